"""Embedding with onnxruntime: a sentence-transformers model exported to ONNX on this machine.

The model directory is the same one the torch backend loads (`modules.json`, the transformer's
`config.json`, its tokenizer, `1_Pooling/config.json`). On first use the transformer is exported
with `torch.onnx.export` into a cache directory chosen by the caller (for instance
`<data_dir>/models/<name>/`), checked against torch, and optionally quantised to int8 with
`onnxruntime.quantization.quantize_dynamic`. Later loads read the cached files and need neither
torch nor the export.

Cache layout (in `cache_dir`)::

    model.onnx            fp32 transformer: input ids, attention mask[, token type ids] -> token embeddings
    model.onnx.json       its manifest: sha256, size, the source model's fingerprint, versions used
    model.int8.onnx       int8 dynamic quantisation of model.onnx, FFN down-projections kept in fp32:
                          embeds queries (only with variant="int8")
    model.int8-documents.onnx  every MatMul int8: embeds documents, 1.5x faster (only with variant="int8")
    *.json                each model's manifest
    .lock                 exporters serialise on this file (fcntl.flock)

Every file is written to a temporary name in the same directory and renamed into place, the model
before its manifest. A cached model is used only if its manifest matches the source model and the
installed versions, and the file's size and sha256 match the manifest; anything else (missing,
half-written, corrupt, stale) is exported again. The bytes that are hashed are the bytes handed to
onnxruntime, so a file replaced between the check and the load cannot slip through.

Pooling and normalisation are done here in numpy, exactly as the model's `1_Pooling/config.json`
says (mean pooling over non-padding tokens for all-MiniLM-L6-v2), then L2 normalisation (kb's
`Embedder` contract: inner product = cosine).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..files import fsync_dir, write_atomically
from .base import Embedder, ModelUnavailable

log = logging.getLogger(__name__)

VARIANTS = ("fp32", "int8")
CACHE_FORMAT = 2  # bump to invalidate every cached export (changes to export(), fusion or quantisation)
OPSET = 17
_MAX_SINGLE_FILE_BYTES = 1_900_000_000  # protobuf's limit is 2 GiB; larger exports need external data files
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")  # sentence-transformers module classes
_LEGACY_POOLING_KEYS = {  # sentence-transformers' concatenation order
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_POOLING_MODES = set(_LEGACY_POOLING_KEYS.values())
# model_type values for which onnxruntime's BERT fusions (Attention, SkipLayerNorm, BiasGelu...) apply
_FUSABLE_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "camembert", "electra", "mpnet"}
# Residual Add + LayerNormalization are left apart: onnxruntime's fused SkipLayerNormalization
# kernel took a fifth of the int8 model's time on this CPU, and without it the documents model
# embeds 20% more passages per second, to the same accuracy (`bench/embedders.py`).
_UNFUSED = ["SkipLayerNormFusion"]
_PROBE_TEXTS = [
    "a",
    "What is the capital of France?",
    "Our shop in Lyon is open Monday to Friday from 9am to 6pm, and on Saturday mornings until noon.",
    "Der schnelle braune Fuchs springt über den faulen Hund. 東京は日本の首都です。",
    " ".join(["The quick brown fox jumps over the lazy dog."] * 30),  # past max_tokens: truncated
]


def _read_json(path: Path) -> dict | list:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _resolve_source(source: str) -> Path:
    path = Path(source)
    if path.is_dir():
        return path
    try:  # a Hugging Face id already in the local cache; nothing is downloaded
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception as exc:
        raise ModelUnavailable(f"model {source!r} is neither a local directory nor in the Hugging Face cache: {exc}") from exc


def _pooling_modes(config: dict) -> tuple[str, ...]:
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for key, m in _LEGACY_POOLING_KEYS.items() if config.get(key)) or ("mean",)
    unknown = [m for m in modes if m not in _POOLING_MODES]
    if unknown:
        raise ModelUnavailable(f"unsupported pooling mode(s) {unknown} in the model's pooling config")
    return modes


def pool(token_embeddings: np.ndarray, attention_mask: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """sentence-transformers' Pooling on right-padded float32 arrays, then L2 normalisation."""
    mask = attention_mask.astype(np.float32)[:, :, None]  # (batch, seq, 1)
    parts: list[np.ndarray] = []
    lengths = mask.sum(axis=1)  # (batch, 1)
    for mode in modes:
        if mode == "cls":
            first = attention_mask.argmax(axis=1)
            parts.append(token_embeddings[np.arange(len(first)), first])
        elif mode == "max":
            parts.append(np.where(mask > 0, token_embeddings, -np.inf).max(axis=1))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            summed = (token_embeddings * mask).sum(axis=1)
            denominator = np.clip(lengths, 1e-9, None)
            parts.append(summed / (denominator if mode == "mean" else np.sqrt(denominator)))
        elif mode == "weightedmean":
            weights = np.arange(1, token_embeddings.shape[1] + 1, dtype=np.float32)[None, :, None] * mask
            parts.append((token_embeddings * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None))
        elif mode == "lasttoken":
            last = np.maximum(attention_mask.sum(axis=1).astype(np.int64) - 1, 0)
            parts.append(token_embeddings[np.arange(len(last)), last])
    vectors = np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.clip(norms, 1e-12, None), dtype=np.float32)


@contextlib.contextmanager
def _temp_path(directory: Path, name: str) -> Iterator[Path]:
    """A fresh temporary file name next to `name` in `directory`, removed if still there at the end."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextlib.contextmanager
def _export_lock(directory: Path) -> Iterator[None]:
    """Serialise exports between processes (and threads) on `<cache_dir>/.lock`."""
    with _THREAD_LOCK:
        try:
            import fcntl
        except ImportError:  # not POSIX: atomic renames still keep every file whole
            yield
            return
        with open(directory / ".lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                # Every temporary file is written under this lock: any left now is from a process
                # that died mid-export (they are ~90 MB each).
                for orphan in directory.glob(".model*.tmp"):
                    with contextlib.suppress(OSError):
                        orphan.unlink()
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_THREAD_LOCK = threading.RLock()


class _DropToolChatter(logging.Filter):
    """onnxruntime's quantiser logs dozens of INFO lines through the root logger: keep only errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    chatter = _DropToolChatter()
    root = logging.getLogger()
    root.addFilter(chatter)
    try:
        yield
    finally:
        root.removeFilter(chatter)


def _quiet_optimizer_loggers() -> None:
    """The transformer optimizer's modules log under their bare module names (fusion_*, onnx_model*)."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("fusion_", "onnx_model", "optimizer")):
            logging.getLogger(name).setLevel(logging.WARNING)


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

    Two `InferenceSession`s are kept, so a query never queues behind a document batch in the same
    session's thread pool: `embed_query` runs on the query session, `embed_documents` on the batch
    session. With int8 they run different quantisations of the same model: a query is short and
    embedded once, so it gets the more accurate one; documents are bulk work, so they get the
    faster one. A query vector and a document vector each approximate the fp32 model's on their
    own, so their errors do not add up: on msmarco-5k nDCG@10 is 0.7926 this way, against 0.7977
    for torch (`bench/embedders.py`); a trial with the fast model on both sides gave 0.7905. Both are thread-safe. Raises `ModelUnavailable` when onnxruntime is missing, the
    model is of an unsupported kind, or the export or the check after it fails; the caller may
    then fall back to the torch backend.
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
        self.batch_threads = int(batch_threads or _available_cpus())
        self.exported = False  # whether this instance had to export or quantise (False: cache reused)
        self.export_seconds = 0.0

        self._root = _resolve_source(self.source)
        try:
            self._read_model_config()
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise ModelUnavailable(f"{self._root} is not a readable sentence-transformers model: {exc}") from exc
        self._load_tokenizer()
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelUnavailable(f"ONNX cache directory {self.cache_dir} cannot be created: {exc}") from exc
        fingerprint = self._fingerprint()  # walks the model directory: once for both files
        data = self._model_bytes(self.model_path, fingerprint)
        documents_data = data if self.documents_path == self.model_path else self._model_bytes(self.documents_path, fingerprint)
        try:
            self._query_session = self._session(data, self.query_threads)
            self._model_data: bytes | None = documents_data  # for the batch session, made on first use
            self._batch_session_ = None
            self._batch_lock = threading.Lock()
        except Exception as exc:
            raise ModelUnavailable(f"onnxruntime cannot load {self.model_path}: {exc}") from exc

    # ----------------------------------------------------------------- model directory and tokenizer

    def _read_model_config(self) -> None:
        modules_file = self._root / "modules.json"
        if not modules_file.is_file():
            raise ModelUnavailable(f"{self._root} is not a sentence-transformers model (no modules.json)")
        modules = _read_json(modules_file)
        types = [str(m.get("type", "")) for m in modules]
        kinds = [t.rsplit(".", 1)[-1] for t in types]
        unsupported = [t for t, k in zip(types, kinds) if not t.startswith("sentence_transformers.") or k not in _SUPPORTED_MODULES]
        if unsupported:
            raise ModelUnavailable(
                f"the ONNX backend runs Transformer + Pooling (+ Normalize) models only; "
                f"{self.name!r} also has {unsupported}"
            )
        if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
            raise ModelUnavailable(f"the ONNX backend expects Transformer then Pooling modules, not {kinds}")
        self._transformer_dir = self._root / (modules[0].get("path") or "")
        pooling = _read_json(self._root / modules[1]["path"] / "config.json")
        self.pooling_modes = _pooling_modes(pooling)
        st_config_file = self._transformer_dir / "sentence_bert_config.json"
        if not st_config_file.is_file():
            st_config_file = self._root / "sentence_bert_config.json"
        self._st_config = _read_json(st_config_file) if st_config_file.is_file() else {}
        self._hf_config = _read_json(self._transformer_dir / "config.json")
        hidden = int(self._hf_config.get("hidden_size") or pooling.get("embedding_dimension") or pooling["word_embedding_dimension"])
        self.dimension = hidden * len(self.pooling_modes)
        # Prompts, as the torch backend reads them (sentence-transformers' `prompts`)
        st_model_config_file = self._root / "config_sentence_transformers.json"
        st_model_config = _read_json(st_model_config_file) if st_model_config_file.is_file() else {}
        prompts = st_model_config.get("prompts") or {}
        default = prompts.get(st_model_config.get("default_prompt_name") or "")
        self._query_prompt = prompts.get("query") or default
        self._document_prompt = prompts.get("document") or prompts.get("passage") or default
        self._count_prefix = prompts.get("document") or prompts.get("passage") or ""  # as the torch backend counts
        if pooling.get("include_prompt") is False and (self._query_prompt or self._document_prompt):
            raise ModelUnavailable("the ONNX backend does not support pooling that excludes the prompt")

    def _load_tokenizer(self) -> None:
        try:
            from transformers import AutoTokenizer

            kwargs = {}
            if self._st_config.get("max_seq_length"):
                kwargs["model_max_length"] = int(self._st_config["max_seq_length"])
            tokenizer = AutoTokenizer.from_pretrained(str(self._transformer_dir), use_fast=True, **kwargs)
        except Exception as exc:
            raise ModelUnavailable(f"tokenizer of {self.name!r} could not be loaded from {self._transformer_dir}: {exc}") from exc
        if not getattr(tokenizer, "is_fast", False):
            raise ModelUnavailable(f"the ONNX backend needs a fast (Rust) tokenizer; {self.name!r} has none")
        max_positions = self._hf_config.get("max_position_embeddings")
        if "model_max_length" not in kwargs and max_positions and max_positions != -1:
            tokenizer.model_max_length = min(tokenizer.model_max_length, int(max_positions))
        if self._st_config.get("do_lower_case"):
            from tokenizers.normalizers import Lowercase, Sequence as NormalizerSequence

            backend = tokenizer.backend_tokenizer
            if "Lowercase" not in repr(backend.normalizer):
                current = [backend.normalizer] if backend.normalizer is not None else []
                backend.normalizer = NormalizerSequence([Lowercase(), *current])
        self.max_tokens = int(tokenizer.model_max_length)
        self.tokenizer = tokenizer
        from tokenizers import Tokenizer

        # Private copies of the Rust tokenizer with fixed settings: the HF wrapper changes its
        # backend's truncation on every call, which is not safe across threads; these never change.
        serialized = tokenizer.backend_tokenizer.to_str()
        self._count_tokenizer = Tokenizer.from_str(serialized)
        self._count_tokenizer.no_truncation()
        self._count_tokenizer.no_padding()
        self._embed_tokenizer = Tokenizer.from_str(serialized)
        self._embed_tokenizer.no_padding()
        # Safety net only: kb's chunker keeps passages within max_tokens, so nothing should be cut.
        self._embed_tokenizer.enable_truncation(self.max_tokens)
        self._pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self._pad_type_id = int(getattr(tokenizer, "pad_token_type_id", 0) or 0)

    # ----------------------------------------------------------------------------- the ONNX cache

    @property
    def model_path(self) -> Path:
        """The model of `embed_query`."""
        return self.cache_dir / ("model.onnx" if self.variant == "fp32" else "model.int8.onnx")

    @property
    def documents_path(self) -> Path:
        """The model of `embed_documents`."""
        return self.cache_dir / ("model.onnx" if self.variant == "fp32" else "model.int8-documents.onnx")

    @property
    def fp32_path(self) -> Path:
        return self.cache_dir / "model.onnx"

    def _fingerprint(self) -> dict:
        """What a cached export depends on: the source model's files and the tools' versions."""
        import onnxruntime

        files = {}
        cache = self.cache_dir.resolve()
        for path in sorted(self._root.rglob("*")):
            if cache == path.resolve() or cache in path.resolve().parents:
                continue  # a cache inside the model directory must not change the model's fingerprint
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(self._root).parts):
                stat = path.stat()
                files[str(path.relative_to(self._root))] = [stat.st_size, stat.st_mtime_ns]
        versions = {"onnxruntime": onnxruntime.__version__}
        for package in ("torch", "transformers", "onnx"):
            versions[package] = _version(package)
        return {
            "cache_format": CACHE_FORMAT,
            "opset": OPSET,
            "fuse": self.fuse,
            "source": str(self._root.resolve()),
            "files": files,
            "versions": versions,
        }

    def _read_valid(self, path: Path, fingerprint: dict) -> bytes | None:
        """The file's bytes if its manifest matches the fingerprint and its content; else None."""
        manifest_path = path.with_name(path.name + ".json")
        try:
            manifest = _read_json(manifest_path)
            if manifest.get("fingerprint") != fingerprint:
                log.info("ONNX cache %s is stale (source model or versions changed)", path)
                return None
            data = path.read_bytes()
        except (OSError, ValueError, AttributeError):
            return None
        if len(data) != manifest.get("size") or hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
            log.warning("ONNX cache %s does not match its manifest (partial or corrupt file): exporting again", path)
            return None
        return data

    def _publish(self, tmp: Path, path: Path, fingerprint: dict, **extra: object) -> bytes:
        """Rename a finished temporary model into place, then write its manifest."""
        data = tmp.read_bytes()
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
        manifest = {
            "fingerprint": fingerprint,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **extra,
        }
        write_atomically(path.with_name(path.name + ".json"), json.dumps(manifest, indent=1).encode(), mode=0o644)
        return data

    def _model_bytes(self, path: Path, fingerprint: dict) -> bytes:
        """The cached model file `path`, exported/quantised first if the cache lacks a valid one."""
        data = self._read_valid(path, fingerprint)
        if data is not None:
            return data
        try:
            with _export_lock(self.cache_dir):
                data = self._read_valid(path, fingerprint)  # another process may have done it
                if data is not None:
                    return data
                started = time.perf_counter()
                fp32 = self._read_valid(self.fp32_path, fingerprint)
                if fp32 is None:
                    fp32 = self._export(fingerprint)
                if path != self.fp32_path:
                    data = self._quantize(fp32, fingerprint, path, keep_ffn_down=path == self.model_path)
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

    def _export(self, fingerprint: dict) -> bytes:
        """Export the transformer with torch.onnx.export; check it against torch; fuse if that is exact."""
        import torch
        from sentence_transformers import SentenceTransformer

        log.info("exporting %s to ONNX in %s (once; takes a few seconds)", self.name, self.cache_dir)
        started = time.perf_counter()
        try:
            # eager attention: a plain traceable graph, which onnxruntime's fusions recognise
            model = SentenceTransformer(str(self._root), device="cpu", model_kwargs={"attn_implementation": "eager"})
        except Exception:
            model = SentenceTransformer(str(self._root), device="cpu")
        model.eval()
        transformer = model[0].auto_model
        weight_bytes = sum(p.numel() * p.element_size() for p in transformer.parameters())
        if weight_bytes > _MAX_SINGLE_FILE_BYTES:
            raise ModelUnavailable(
                f"{self.name!r} has {weight_bytes / 1e9:.1f} GB of weights: too large for a single-file ONNX "
                "model (protobuf's 2 GB limit); use the torch backend"
            )
        torch_max = int(model.max_seq_length)
        if torch_max != self.max_tokens:
            raise ModelUnavailable(f"max_tokens mismatch: sentence-transformers says {torch_max}, the tokenizer {self.max_tokens}")
        forward_params = set(inspect.signature(transformer.forward).parameters)
        input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in forward_params]
        if "token_type_ids" in input_names and "token_type_ids" not in self.tokenizer.model_input_names:
            input_names.remove("token_type_ids")

        class TokenEmbeddings(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, *inputs):
                return self.inner(**dict(zip(input_names, inputs))).last_hidden_state

        # The dummy batch must contain padding, so the traced graph keeps the attention mask path.
        dummy = self._feed(self._encode_batch(["hello world", "a longer sentence, so the first one is padded"]), input_names)
        with _temp_path(self.cache_dir, "model.onnx") as tmp, torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about Python-level branches in transformers' mask code; they depend on
            # shapes that are equal for every encoder input, and the check below runs several shapes.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                TokenEmbeddings(transformer).eval(),
                tuple(torch.from_numpy(dummy[n]) for n in input_names),
                str(tmp),
                input_names=input_names,
                output_names=["token_embeddings"],
                dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*input_names, "token_embeddings"]},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
            # The reference: sentence-transformers itself, on probe texts of several lengths
            reference = model.encode(
                _PROBE_TEXTS, prompt="", batch_size=len(_PROBE_TEXTS), normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
            self._check(tmp.read_bytes(), reference, 0.9999, "the exported model")
            fused = False
            if self.fuse and self._hf_config.get("model_type") in _FUSABLE_MODEL_TYPES:
                fused = self._try_fuse(tmp, reference)
            export_seconds = time.perf_counter() - started
            data = self._publish(tmp, self.fp32_path, fingerprint, variant="fp32", fused=fused,
                                 inputs=input_names, seconds=round(export_seconds, 2))
        log.info("exported %s to %s in %.1fs (%d MB, fused=%s)", self.name, self.fp32_path, export_seconds, len(data) >> 20, fused)
        return data

    def _try_fuse(self, tmp: Path, reference: np.ndarray) -> bool:
        try:
            from onnxruntime.transformers.fusion_options import FusionOptions
            from onnxruntime.transformers.optimizer import optimize_model

            heads = int(self._hf_config["num_attention_heads"])
            hidden = int(self._hf_config["hidden_size"])
            _quiet_optimizer_loggers()
            options = FusionOptions("bert")
            options.enable_skip_layer_norm = False  # see _UNFUSED
            optimized = optimize_model(str(tmp), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0,
                                       use_gpu=False, optimization_options=options)
            with _temp_path(self.cache_dir, "model.fused.onnx") as fused_tmp:
                optimized.save_model_to_file(str(fused_tmp))
                self._check(fused_tmp.read_bytes(), reference, 0.9999, "the fused model")
                os.replace(fused_tmp, tmp)
            return True
        except Exception as exc:  # fusion is an optimisation only: keep the plain export
            log.warning("onnxruntime fusion of %s skipped: %s", self.name, exc)
            return False

    def _quantize(self, fp32: bytes, fingerprint: dict, path: Path, *, keep_ffn_down: bool) -> bytes:
        """Dynamic int8 quantisation of the fp32 export: weights int8 per channel, activations per run.

        With `keep_ffn_down` (the query model) the FFN down-projections (the MatMul right after
        each GELU) stay in fp32: their inputs have the outlier features of BERT-like models, and
        per-tensor int8 activations there cost up to 3% cosine on short or non-English texts. They
        are also 40% of the int8 model's time, so the document model quantises them too.
        """
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        started = time.perf_counter()
        reference = self._embed_with(self._session(fp32, 1), _PROBE_TEXTS)
        keep_fp32 = _ffn_down_projections(onnx.load_model_from_string(fp32)) if keep_ffn_down else []
        with _temp_path(self.cache_dir, path.name) as tmp, _quiet_quantizer():
            quantize_dynamic(
                self.fp32_path,
                tmp,
                weight_type=QuantType.QInt8,
                per_channel=True,  # per-tensor weights cost MiniLM ~4% cosine; per-channel under 1%
                nodes_to_exclude=keep_fp32,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # for fused contrib ops
            )
            self._check(tmp.read_bytes(), reference, 0.97, "the int8 model")
            data = self._publish(tmp, path, fingerprint, variant="int8", kept_fp32=keep_fp32,
                                 seconds=round(time.perf_counter() - started, 2))
        log.info("quantised %s to %s (%d MB, %d MatMuls kept in fp32)", self.name, path, len(data) >> 20, len(keep_fp32))
        return data

    def _check(self, data: bytes, reference: np.ndarray, min_cosine: float, what: str) -> None:
        vectors = self._embed_with(self._session(data, 1), _PROBE_TEXTS)
        cosines = (vectors * reference).sum(axis=1)
        if not np.all(cosines >= min_cosine):
            raise ModelUnavailable(
                f"{what} of {self.name!r} does not reproduce the reference embeddings "
                f"(cosine {cosines.min():.5f} < {min_cosine})"
            )

    # -------------------------------------------------------------------------------- inference

    def _session(self, data: bytes, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep instead of spinning, so they do not take a core from the other session.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"], disabled_optimizers=_UNFUSED)

    def _batch_session(self):
        """The session of `embed_documents`, made by the first thread that embeds documents.

        Its pool threads are started by that thread and inherit its scheduling priority on Linux:
        a background worker that lowered its own priority gets a batch session whose threads all
        yield to the threads answering queries."""
        with self._batch_lock:
            if self._batch_session_ is None:
                # int8 runs `batch_threads` texts side by side, each on one thread
                threads = 1 if self.variant == "int8" else self.batch_threads
                self._batch_session_ = self._session(self._model_data, threads)
                self._model_data = None
            return self._batch_session_

    def session_threads(self) -> dict[str, int]:
        """Intra-op threads each session was created with (what onnxruntime reports)."""
        return {
            "query": self._query_session.get_session_options().intra_op_num_threads,
            "batch": self._batch_session().get_session_options().intra_op_num_threads,
        }

    def _encode_batch(self, texts: Sequence[str]):
        return self._embed_tokenizer.encode_batch(list(texts), add_special_tokens=True)

    def _feed(self, encodings: Sequence, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Right-padded int64 arrays for a batch of tokenizer encodings."""
        length = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), length), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        types = np.full((len(encodings), length), self._pad_type_id, dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = 1
            types[row, :n] = encoding.type_ids
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: arrays[name] for name in names}

    def _run(self, session, encodings: Sequence) -> np.ndarray:
        names = [i.name for i in session.get_inputs()]
        feed = self._feed(encodings, names)
        (token_embeddings,) = session.run(["token_embeddings"], feed)
        attention_mask = feed.get("attention_mask")
        if attention_mask is None:
            attention_mask = (feed["input_ids"] != self._pad_id).astype(np.int64)
        return pool(token_embeddings, attention_mask, self.pooling_modes)

    def _embed_with(self, session, texts: Sequence[str]) -> np.ndarray:
        return self._run(session, self._encode_batch(texts))

    def _with_prompt(self, texts: Sequence[str], prompt: str | None) -> list[str]:
        return [prompt + t for t in texts] if prompt else list(texts)

    # ------------------------------------------------------------------------------- Embedder API

    def count_tokens(self, text: str) -> int:
        return len(self._count_tokenizer.encode(self._count_prefix + text, add_special_tokens=True).ids)

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
        encodings = self._encode_batch(self._with_prompt(texts, self._document_prompt))
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
        return self._embed_with(self._query_session, self._with_prompt([text], self._query_prompt))[0]


_GELU_OPS = {"Gelu", "BiasGelu", "FastGelu", "QuickGelu"}


def _ffn_down_projections(model) -> list[str]:
    """Names of the MatMul nodes fed by a GELU: fused (Gelu, BiasGelu...) or spelled out (erf/tanh ... Mul)."""
    producer = {out: node for node in model.graph.node for out in node.output}

    def gelu_output(node, depth: int = 0) -> bool:
        if node is None or depth > 3:
            return False
        if node.op_type in _GELU_OPS:
            return True
        if node.op_type in ("Erf", "Tanh"):
            return depth > 0
        if node.op_type in ("Mul", "Add", "Div"):
            return any(gelu_output(producer.get(i), depth + 1) for i in node.input)
        return False

    return [n.name for n in model.graph.node if n.op_type == "MatMul" and gelu_output(producer.get(n.input[0]))]


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _version(package: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return None
