"""What an embedding model's cosine distances mean: its calibrated default cut, its fusion anchors, the
languages it knows, and how a distance given on another model's scale maps onto it. Data and pure functions.

The figures of all-MiniLM-L6-v2 come from `bench/calibrate.py` (`derive`: on the English calibration sets
the smallest cut, in steps of 0.01, keeping 95 % of the answers the uncut hybrid ranking delivers, each set
weighted equally) and BENCHMARKS.md "Distance calibration"; a model of another scale needs its own entry,
made the same way. A model without one gets `UNCALIBRATED` (ElevenLabs' default of 0.6 and the anchors of
all-MiniLM-L6-v2), which is a guess: calibrate it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .fusion import DEFAULTS, FusionConstants

ANY_BACKEND = "*"


@dataclass(frozen=True)
class ModelCalibration:
    """One model's scale.

    `max_vector_distance`: the default cut per embedding backend (`ANY_BACKEND` for the rest), used when a
    request gives none. `unrelated_distance`: the median distance of the nearest chunk for questions the
    workspace cannot answer (the top of the range a client's distance on another scale is mapped into).
    `fusion`: the cosine anchors of hybrid fusion. `languages`: those the model was trained on (None:
    multilingual); outside them its distances say nothing.
    """

    max_vector_distance: Mapping[str, float]
    unrelated_distance: float
    fusion: FusionConstants = DEFAULTS
    languages: frozenset[str] | None = None

    def default_distance(self, backend: str) -> float:
        """The default `max_vector_distance` of this model on `backend`."""
        by_backend = self.max_vector_distance
        return by_backend[backend] if backend in by_backend else by_backend[ANY_BACKEND]


@dataclass(frozen=True)
class ClientScale:
    """The distance scale of a model a client names but another model serves.

    `unrelated_distance`: where that scale means "unrelated" (and beyond: no cut at all on its own scale).
    """

    unrelated_distance: float
    source: str = field(default="", compare=False)  # where the figure comes from


# all-MiniLM-L6-v2: derived 0.60 on ONNX int8 and 0.59 on torch (fp32); ONNX fp32 runs the same weights at
# the same precision as torch and takes its value. Absent-topic median 0.70 (msmarco 0.73, entities 0.70,
# ml-en 0.75; BENCHMARKS.md).
MINILM = ModelCalibration(
    max_vector_distance={"onnx-int8": 0.60, "torch": 0.59, "onnx": 0.59, ANY_BACKEND: 0.60},
    unrelated_distance=0.70,
    fusion=FusionConstants(no_match_cosine=0.4, clear_match_cosine=0.9),
    languages=frozenset({"english"}),
)

CALIBRATIONS: dict[str, ModelCalibration] = {"all-MiniLM-L6-v2": MINILM}

UNCALIBRATED = ModelCalibration(max_vector_distance={ANY_BACKEND: 0.6}, unrelated_distance=0.7)

# e5 (intfloat model cards): cosine similarities "distribute around 0.7 to 1.0", so distances of 0-0.3 for
# related and unrelated pairs alike; 0.25 (similarity 0.75) is its unrelated level. To be re-anchored by
# bench/calibrate.py the day an e5 model is installed.
E5_SCALE = ClientScale(unrelated_distance=0.25, source="intfloat e5 model cards (InfoNCE temperature 0.01)")
CLIENT_SCALES: dict[str, ClientScale] = {
    "e5_mistral_7b_instruct": E5_SCALE,
    "multilingual_e5_large_instruct": E5_SCALE,
}


def calibration_of(model: str) -> ModelCalibration:
    """The calibration of a served model (`UNCALIBRATED` when it has none)."""
    return CALIBRATIONS.get(model, UNCALIBRATED)


def map_distance(distance: float, scale: ClientScale, target: ModelCalibration, backend: str) -> float:
    """A `max_vector_distance` given on `scale`, on the target model's scale.

    Linear from 0 -> 0 towards the scale's unrelated level -> the target's unrelated distance, capped at
    the target's calibrated default; at or above that level (ElevenLabs' default 0.6 included, which cuts
    nothing on e5's own scale) the default itself, since a client sending its platform's default means
    "the sensible default", not "everything". The cap keeps the mapping continuous and never decreasing.
    """
    default = target.default_distance(backend)
    if distance >= scale.unrelated_distance:
        return default
    return min(round(distance / scale.unrelated_distance * target.unrelated_distance, 6), default)
