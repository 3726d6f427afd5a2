"""`OnnxEmbedder`: the model folder, its tokenizer, the export cache and two onnxruntime sessions, composed."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..base import Embedder, ModelUnavailable
from .cache import ExportCache
from .export import OPSET, ExportJob, export_fp32
from .model_dir import ModelFolder, resolve_source
from .quantize import quantize
from .runtime import available_cpus, run, session
from .tokenizer import ModelTokenizer

log = logging.getLogger(__name__)

VARIANTS = ("fp32", "int8")


class OnnxEmbedder(Embedder):
    """A sentence-transformers model (Transformer + Pooling [+ Normalize]) run with onnxruntime.

    Args:
        name: the model's name in kb.
        source: the sentence-transformers model directory (or a Hugging Face id in the local cache).
        cache_dir: where the exported ONNX files are kept (created if missing), one per model.
        variant: "fp32" (the exported model) or "int8" (dynamic int8 quantisation of it: queries
            with the FFN down-projections kept in fp32, documents with every MatMul in int8).
        query_threads: intra-op threads of the session that serves `embed_query` (default 1).
        batch_threads: intra-op threads of the session that serves `embed_documents`
            (default: the CPUs this process may run on).
        fuse: let onnxruntime's transformer optimizer fuse attention/layer-norm/GELU subgraphs
            into its contrib ops when exporting (checked against the unfused export, dropped if it
            does not match).

    On first use the transformer is exported into `cache_dir` (export.py), checked against torch,
    and optionally quantised to int8 (quantize.py); later loads read the cached files (cache.py)
    and need neither torch nor the export.

    Two `InferenceSession`s are kept, so a query never queues behind a document batch in the same
    session's thread pool: `embed_query` runs on the query session, `embed_documents` on the batch
    session. With int8 they run different quantisations of the same model: a query is short and
    embedded once, so it gets the more accurate one; documents are bulk work, so they get the
    faster one. A query vector and a document vector each approximate the fp32 model's on their
    own, so their errors do not add up: on msmarco-5k nDCG@10 is 0.7926 this way, against 0.7977
    for torch (`bench/embedders.py`); a trial with the fast model on both sides gave 0.7905. Both
    are thread-safe. Raises `ModelUnavailable` when onnxruntime is missing, the model is of an
    unsupported kind, or the export or the check after it fails; the caller may then fall back to
    the torch backend.
    """

    def __init__(
        self,
        name: str,
        source: str,
        cache_dir: str | os.PathLike[str],
        *,
        variant: str = "fp32",
        query_threads: int = 1,
        batch_threads: int | None = None,
        fuse: bool = True,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        if query_threads < 1 or (batch_threads is not None and batch_threads < 1):
            raise ValueError("thread counts must be at least 1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import onnxruntime  # noqa: F401
        except Exception as exc:
            raise ModelUnavailable(f"the ONNX backend needs onnxruntime ({exc}); use the torch backend") from exc
        self.name = name
        self.source = str(source)
        self.variant = variant
        self.backend = "onnx" if variant == "fp32" else "onnx-int8"
        self.fuse = fuse
        self.cache_dir = Path(cache_dir)
        self.query_threads = int(query_threads)
        self.batch_threads = int(batch_threads or available_cpus())
        self.exported = False  # whether this instance had to export or quantise (False: cache reused)
        self.export_seconds = 0.0

        self.folder = ModelFolder.read(resolve_source(self.source), name)
        self.pooling_modes = self.folder.pooling_modes
        self.dimension = self.folder.dimension
        self.tokens = ModelTokenizer(self.folder, name)
        self.max_tokens = self.tokens.max_tokens
        self.tokenizer = self.tokens.hf
        self._cache = ExportCache(self.cache_dir)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelUnavailable(f"ONNX cache directory {self.cache_dir} cannot be created: {exc}") from exc
        fingerprint = self._fingerprint()  # walks the model directory: once for both files
        data = self._model_bytes(self.model_path, fingerprint)
        documents_data = data if self.documents_path == self.model_path else self._model_bytes(self.documents_path, fingerprint)
        try:
            self._query_session = session(data, self.query_threads)
            self._model_data: bytes | None = documents_data  # for the batch session, made on first use
            self._batch_session_ = None
            self._batch_lock = threading.Lock()
        except Exception as exc:
            raise ModelUnavailable(f"onnxruntime cannot load {self.model_path}: {exc}") from exc

    # ----------------------------------------------------------------------------- the ONNX cache

    @property
    def model_path(self) -> Path:
        """The model of `embed_query`."""
        return self._cache.query_path(self.variant)

    @property
    def documents_path(self) -> Path:
        """The model of `embed_documents`."""
        return self._cache.documents_path(self.variant)

    @property
    def fp32_path(self) -> Path:
        return self._cache.fp32_path

    def _fingerprint(self) -> dict:
        """What a cached export depends on: the source model's files and the tools' versions."""
        return self._cache.fingerprint(self.folder.root, fuse=self.fuse, opset=OPSET)

    def _read_valid(self, path: Path, fingerprint: dict) -> bytes | None:
        """The file's bytes if its manifest matches the fingerprint and its content; else None."""
        return self._cache.read_valid(path, fingerprint)

    def _model_bytes(self, path: Path, fingerprint: dict) -> bytes:
        """The cached model file `path`, exported/quantised first if the cache lacks a valid one."""
        data = self._read_valid(path, fingerprint)
        if data is not None:
            return data
        try:
            with self._cache.lock():
                data = self._read_valid(path, fingerprint)  # another process may have done it
                if data is not None:
                    return data
                started = time.perf_counter()
                job = ExportJob(self.name, self.folder, self.tokens, self._cache, fingerprint, self.fuse)
                fp32 = self._read_valid(self.fp32_path, fingerprint)
                if fp32 is None:
                    fp32 = export_fp32(job)
                if path != self.fp32_path:
                    data = quantize(job, fp32, path, keep_ffn_down=path == self.model_path)
                else:
                    data = fp32
                self.exported = True
                self.export_seconds += time.perf_counter() - started
                log.info("ONNX model %s of %s ready in %.1fs", path, self.name, time.perf_counter() - started)
                return data
        except ModelUnavailable:
            raise
        except Exception as exc:
            raise ModelUnavailable(f"ONNX export of {self.name!r} to {self.cache_dir} failed: {exc}") from exc

    # -------------------------------------------------------------------------------- inference

    def _batch_session(self):
        """The session of `embed_documents`, made by the first thread that embeds documents.

        Its pool threads are started by that thread and inherit its scheduling priority on Linux:
        a background worker that lowered its own priority gets a batch session whose threads all
        yield to the threads answering queries."""
        with self._batch_lock:
            if self._batch_session_ is None:
                # int8 runs `batch_threads` texts side by side, each on one thread
                threads = 1 if self.variant == "int8" else self.batch_threads
                self._batch_session_ = session(self._model_data, threads)
                self._model_data = None
            return self._batch_session_

    def session_threads(self) -> dict[str, int]:
        """Intra-op threads each session was created with (what onnxruntime reports)."""
        return {
            "query": self._query_session.get_session_options().intra_op_num_threads,
            "batch": self._batch_session().get_session_options().intra_op_num_threads,
        }

    def _run(self, session, encodings: Sequence) -> np.ndarray:
        """Vectors of one batch of encodings on `session`."""
        return run(session, self.tokens, encodings, self.pooling_modes)

    def _with_prompt(self, texts: Sequence[str], prompt: str | None) -> list[str]:
        return [prompt + t for t in texts] if prompt else list(texts)

    # ------------------------------------------------------------------------------- Embedder API

    def count_tokens(self, text: str) -> int:
        return self.tokens.count(self.folder.count_prefix + text)

    def embed_documents(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        on_progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed passages, batched by token length across the whole input, in the input's order.

        All texts are tokenised once (truncated at `max_tokens` as a safety net only), sorted by
        length longest first, cut into batches of `batch_size` (little padding in each), and the
        vectors are put back in the input order. `on_progress(done)` runs after each batch.

        The int8 model embeds one text per run whatever `batch_size` says: dynamic quantisation
        scales each activation tensor by its range over the whole batch, padding included, so a
        text's vector would depend on its batch-mates (cosine down to 0.994 here), and a re-index
        would not give back the same vectors. Alone, a text always gets the same vector, and on
        this CPU it is no slower (no padding at all).
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self.tokens.encode_batch(self._with_prompt(texts, self.folder.document_prompt))
        truncated = sum(1 for e in encodings if e.overflowing)
        if truncated:
            log.warning("%d of %d texts were longer than %d tokens and were truncated", truncated, len(texts), self.max_tokens)
        session = self._batch_session()
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if self.variant == "int8":
            self._embed_one_by_one(session, encodings, out, on_progress)
            return out
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._run(session, [encodings[i] for i in rows])
            if on_progress:
                on_progress(start + len(rows))
        return out

    def _embed_one_by_one(self, session, encodings: Sequence, out: np.ndarray, on_progress) -> None:
        """One text per run, `batch_threads` runs at once (onnxruntime releases the GIL while it
        runs): on a few cores, texts side by side beat threads splitting one small matrix."""
        from concurrent.futures import ThreadPoolExecutor

        def embed(i: int) -> int:
            out[i] = self._run(session, [encodings[i]])[0]
            return i

        # The pool's threads are started by the calling thread, so they share its OS priority.
        pool = ThreadPoolExecutor(max_workers=self.batch_threads, thread_name_prefix="kb-embed")
        try:
            for done, _ in enumerate(pool.map(embed, range(len(encodings))), start=1):
                if on_progress and (done % 32 == 0 or done == len(encodings)):
                    on_progress(done)  # may raise to stop early: the texts not started are dropped
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def embed_query(self, text: str) -> np.ndarray:
        encodings = self.tokens.encode_batch(self._with_prompt([text], self.folder.query_prompt))
        return self._run(self._query_session, encodings)[0]
