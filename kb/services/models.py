"""The embedding models this service knows, loaded once per process and shared by all threads.

A client names a model (ElevenLabs' `e5_mistral_7b_instruct`, or any name of `KB_MODELS`);
`ModelRegistry.resolve` is the one place that turns that name into the configured model that
serves it (`ServedModel`): the model of that name when its files are on this machine, otherwise
the fallback `KB_MODEL_ALIASES` gives it. Indexes and chunks are stored under the served model's
name, so every name served by one model shares its indexes and its usage.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from index.calibration import CLIENT_SCALES, ModelCalibration, calibration_of, map_distance
from index.embedders import Embedder, ModelUnavailable, load_embedder

from ..errors import InvalidRequest, ModelNotInstalled, UnknownModel
from ..settings import ELEVENLABS_MODELS, EmbeddingSettings

log = logging.getLogger(__name__)


# Loaded models are shared by every registry in the process: a model is loaded once.
_LOADED: dict[tuple[str, str, str], Embedder] = {}
_LOAD_LOCK = threading.Lock()


@dataclass(frozen=True)
class ServedModel:
    """A model name as a client gave it, and the configured model that runs for it.

    `requested`: the name the client used (the workspace's default when it gave none); responses
    give it back where the ElevenLabs API names the model. `served`: the model that actually runs,
    the name its indexes and chunks are stored under, and what kb's `served_model` fields say.
    """

    requested: str
    served: str

    @property
    def substituted(self) -> bool:
        """Served by another model (the name's fallback in KB_MODEL_ALIASES)."""
        return self.requested != self.served


class ModelRegistry:
    """`cache_dir`: where exported ONNX models are kept."""

    def __init__(self, settings: EmbeddingSettings, cache_dir: Path):
        self.settings = settings
        self.cache_dir = Path(cache_dir)
        self._served: dict[str, str] = {}  # requested name -> served model, decided once per process

    @property
    def names(self) -> list[str]:
        """Every name a client may use: the configured models, then the other aliases."""
        return list(dict.fromkeys([*self.settings.models, *self.settings.model_aliases]))

    def require_known(self, name: str) -> str:
        """`name` if a client may use it (a configured model or an alias), else a 4xx error naming them."""
        if name not in self.names:
            raise UnknownModel(
                f"unknown embedding model {name!r}; available models: {', '.join(self.names)} "
                "(add more with KB_MODELS=name=path_or_hf_id, or KB_MODEL_ALIASES=name=model)"
            )
        return name

    def resolve(self, name: str) -> ServedModel:
        """The configured model that serves `name`: the model of that name when its files are on this
        machine, otherwise its fallback in KB_MODEL_ALIASES. Decided at the first use of each name in
        a process (installing a model takes a restart). A 4xx error for a name that is not configured,
        or a configured model that is absent with no fallback installed."""
        served = self._served.get(name)
        if served is None:
            served = self._serving(name)
            self._served[name] = served
        return ServedModel(name, served)

    def serves(self, name: str, model: str) -> bool:
        """Whether `name` resolves to `model` now (quietly false when it resolves to nothing)."""
        try:
            return self.resolve(name).served == model
        except (UnknownModel, ModelNotInstalled):
            return False

    def client_name(self, model: str) -> str:
        """The ElevenLabs name that `model` serves (their default first), else `model`'s own name: what
        a read-back that must name an ElevenLabs model shows for it."""
        return next((name for name in ELEVENLABS_MODELS if self.serves(name, model)), model)

    def calibration(self, model: str) -> ModelCalibration:
        """The calibration of a served model (`index.calibration`): its default cut, fusion anchors, languages."""
        return calibration_of(model)

    def default_distance(self, model: str) -> float:
        """The served model's calibrated default `max_vector_distance` on this process's backend."""
        return calibration_of(model).default_distance(self.settings.embed_backend)

    def max_vector_distance(self, choice: ServedModel, given: float | None, *, named: bool = True) -> float:
        """The distance cut to apply: the served model's default when none is given; a value given with
        the name of a model of another scale that another model serves (ElevenLabs' e5 names; `named`:
        the request named the model) mapped onto the served model's scale
        (`index.calibration.map_distance`); otherwise the value given."""
        target = calibration_of(choice.served)
        if given is None:
            return target.default_distance(self.settings.embed_backend)
        scale = CLIENT_SCALES.get(choice.requested)
        if named and scale is not None and choice.substituted:
            return map_distance(given, scale, target, self.settings.embed_backend)
        return given

    def _serving(self, name: str) -> str:
        models, aliases = self.settings.models, self.settings.model_aliases
        self.require_known(name)
        if name in models and self._installed_quietly(name):
            return name
        fallback = aliases.get(name)
        if fallback is None:
            raise ModelNotInstalled(
                f"embedding model {name!r} is configured ({self.settings.models[name]}) but its files are not on this "
                "machine, and nothing is downloaded at run time: put the model there (a local path in KB_MODELS, or "
                f"the Hugging Face cache) and restart kb, or name a model to serve it with KB_MODEL_ALIASES={name}=MODEL; "
                f"installed models: {', '.join(self._installed_names()) or 'none'}"
            )
        if not self._installed_quietly(fallback):
            raise ModelNotInstalled(
                f"embedding model {name!r} is served by {fallback!r} (KB_MODEL_ALIASES), which is not on this machine "
                f"either; installed models: {', '.join(self._installed_names()) or 'none'}"
            )
        if name in models:
            log.warning("embedding model %s is not on this machine: %s serves it (KB_MODEL_ALIASES)", name, fallback)
        return fallback

    def _installed_names(self) -> list[str]:
        return [n for n in self.settings.models if self._installed_quietly(n)]

    def is_installed(self, name: str) -> bool:
        """Whether the configured model's files are on this machine (a local path, or in the Hugging Face cache)."""
        if name not in self.settings.models:
            raise UnknownModel(f"{name!r} is not a configured model (KB_MODELS)")
        source = self.settings.model_source(name)
        if Path(source).exists():
            return True
        try:
            from huggingface_hub import try_to_load_from_cache

            return isinstance(try_to_load_from_cache(source, "config.json"), str)
        except Exception:
            return False

    def get(self, name: str) -> Embedder:
        """The loaded configured model (a served name); loads it on first use. Raises ModelUnavailable
        with a clear message."""
        if name not in self.settings.models:
            raise UnknownModel(f"{name!r} is not a configured model (KB_MODELS); resolve the name first")
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
                        f"{', '.join(n for n in self._installed_names() if n != name)}"
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
