"""The embedding models this service knows, loaded once per process and shared by all threads."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from index.embedders import Embedder, ModelUnavailable, load_embedder

from ..errors import InvalidRequest, UnknownModel
from ..settings import EmbeddingSettings

log = logging.getLogger(__name__)


# Loaded models are shared by every registry in the process: a model is loaded once.
_LOADED: dict[tuple[str, str, str], Embedder] = {}
_LOAD_LOCK = threading.Lock()


class ModelRegistry:
    """`cache_dir`: where exported ONNX models are kept."""

    def __init__(self, settings: EmbeddingSettings, cache_dir: Path):
        self.settings = settings
        self.cache_dir = Path(cache_dir)

    @property
    def names(self) -> list[str]:
        return list(self.settings.models)

    def require_known(self, name: str) -> str:
        """Return `name` if configured; otherwise a 4xx error naming the models there are."""
        if name not in self.settings.models:
            raise UnknownModel(
                f"unknown embedding model {name!r}; available models: {', '.join(self.names)} "
                "(add more with KB_MODELS=name=path_or_hf_id)"
            )
        return name

    def is_installed(self, name: str) -> bool:
        """Whether the model's files are on this machine (a local path, or in the Hugging Face cache)."""
        source = self.settings.model_source(self.require_known(name))
        if Path(source).exists():
            return True
        try:
            from huggingface_hub import try_to_load_from_cache

            return isinstance(try_to_load_from_cache(source, "config.json"), str)
        except Exception:
            return False

    def get(self, name: str) -> Embedder:
        """The loaded model; loads it on first use. Raises ModelUnavailable with a clear message."""
        self.require_known(name)
        key = (name, self.settings.models[name], self.settings.embed_backend)
        embedder = _LOADED.get(key)
        if embedder is not None:
            return embedder
        with _LOAD_LOCK:
            if key not in _LOADED:
                source = self.settings.model_source(name)
                log.info("loading embedding model %s from %s (%s backend)", name, source, self.settings.embed_backend)
                try:
                    _LOADED[key] = load_embedder(
                        name,
                        source,
                        self.settings.embed_backend,
                        onnx_cache_dir=self.cache_dir,
                        query_threads=self.settings.query_threads,
                        batch_threads=self.settings.batch_threads,
                    )
                except ModelUnavailable as exc:
                    raise ModelUnavailable(
                        f"{exc}. Nothing is downloaded at run time: put the model on this machine "
                        f"(a local path in KB_MODELS, or the Hugging Face cache). Installed models: "
                        f"{', '.join(n for n in self.names if n != name and self._installed_quietly(n))}"
                    ) from exc
            return _LOADED[key]

    def get_for_query(self, name: str) -> Embedder:
        """`get` for a request: a model that cannot be loaded is the caller's 400, not a crash."""
        try:
            return self.get(name)
        except ModelUnavailable as exc:
            raise InvalidRequest(str(exc)) from exc

    def _installed_quietly(self, name: str) -> bool:
        try:
            return self.is_installed(name)
        except Exception:
            return False
