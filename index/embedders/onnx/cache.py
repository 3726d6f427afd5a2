"""The cache directory of exported models: its files, their manifests, and the lock exporters share.

Layout (in the cache directory, one per model)::

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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ...files import fsync_dir, write_atomically
from .model_dir import read_json

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # bump to invalidate every cached export (changes to export(), fusion or quantisation)

_THREAD_LOCK = threading.RLock()


class ExportCache:
    """One model's cache directory."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    @property
    def fp32_path(self) -> Path:
        return self.directory / "model.onnx"

    def query_path(self, variant: str) -> Path:
        """The model that embeds queries."""
        return self.directory / ("model.onnx" if variant == "fp32" else "model.int8.onnx")

    def documents_path(self, variant: str) -> Path:
        """The model that embeds documents."""
        return self.directory / ("model.onnx" if variant == "fp32" else "model.int8-documents.onnx")

    def fingerprint(self, root: Path, *, fuse: bool, opset: int) -> dict:
        """What a cached export depends on: the source model's files and the tools' versions."""
        import onnxruntime

        files = {}
        cache = self.directory.resolve()
        for path in sorted(root.rglob("*")):
            if cache == path.resolve() or cache in path.resolve().parents:
                continue  # a cache inside the model directory must not change the model's fingerprint
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts):
                stat = path.stat()
                files[str(path.relative_to(root))] = [stat.st_size, stat.st_mtime_ns]
        versions = {"onnxruntime": onnxruntime.__version__}
        for package in ("torch", "transformers", "onnx"):
            versions[package] = _version(package)
        return {
            "cache_format": CACHE_FORMAT,
            "opset": opset,
            "fuse": fuse,
            "source": str(root.resolve()),
            "files": files,
            "versions": versions,
        }

    def read_valid(self, path: Path, fingerprint: dict) -> bytes | None:
        """The file's bytes if its manifest matches the fingerprint and its content; else None."""
        manifest_path = path.with_name(path.name + ".json")
        try:
            manifest = read_json(manifest_path)
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

    def publish(self, tmp: Path, path: Path, fingerprint: dict, **extra: object) -> bytes:
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

    @contextlib.contextmanager
    def temp_path(self, name: str) -> Iterator[Path]:
        """A fresh temporary file name next to `name`, removed if still there at the end."""
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, 0o644)
        try:
            yield Path(tmp)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise exports between processes (and threads) on `<cache_dir>/.lock`."""
        with _THREAD_LOCK:
            try:
                import fcntl
            except ImportError:  # not POSIX: atomic renames still keep every file whole
                yield
                return
            with open(self.directory / ".lock", "a+b") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    # Every temporary file is written under this lock: any left now is from a process
                    # that died mid-export (they are ~90 MB each).
                    for orphan in self.directory.glob(".model*.tmp"):
                        with contextlib.suppress(OSError):
                            orphan.unlink()
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _version(package: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return None
