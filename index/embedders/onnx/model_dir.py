"""The sentence-transformers model folder: what it holds, read once, checked for what ONNX can run.

The folder is the one the torch backend loads: `modules.json` (Transformer, Pooling, optionally
Normalize), the transformer's `config.json` and tokenizer, `1_Pooling/config.json`, and the
optional `sentence_bert_config.json` and `config_sentence_transformers.json` (prompts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..base import ModelUnavailable

_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")  # sentence-transformers module classes
_LEGACY_POOLING_KEYS = {  # sentence-transformers' concatenation order
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
POOLING_MODES = frozenset(_LEGACY_POOLING_KEYS.values())


def read_json(path: Path) -> dict | list:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def resolve_source(source: str) -> Path:
    """The model folder: `source` itself, or a Hugging Face id already in the local cache."""
    path = Path(source)
    if path.is_dir():
        return path
    try:  # nothing is downloaded
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception as exc:
        raise ModelUnavailable(f"model {source!r} is neither a local directory nor in the Hugging Face cache: {exc}") from exc


def pooling_modes(config: dict) -> tuple[str, ...]:
    """The pooling modes a `1_Pooling/config.json` asks for, in sentence-transformers' order."""
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for key, m in _LEGACY_POOLING_KEYS.items() if config.get(key)) or ("mean",)
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown:
        raise ModelUnavailable(f"unsupported pooling mode(s) {unknown} in the model's pooling config")
    return modes


@dataclass(frozen=True)
class ModelFolder:
    """What the ONNX backend needs to know of a sentence-transformers model folder."""

    root: Path
    transformer_dir: Path
    pooling_modes: tuple[str, ...]
    st_config: dict  # sentence_bert_config.json: max_seq_length, do_lower_case
    hf_config: dict  # the transformer's config.json
    dimension: int
    query_prompt: str | None
    document_prompt: str | None
    count_prefix: str  # what the torch backend prefixes when it counts tokens

    @classmethod
    def read(cls, root: Path, name: str) -> "ModelFolder":
        """Read the folder; `ModelUnavailable` if it is not a model the ONNX backend runs."""
        try:
            return cls._read(root, name)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise ModelUnavailable(f"{root} is not a readable sentence-transformers model: {exc}") from exc

    @classmethod
    def _read(cls, root: Path, name: str) -> "ModelFolder":
        modules_file = root / "modules.json"
        if not modules_file.is_file():
            raise ModelUnavailable(f"{root} is not a sentence-transformers model (no modules.json)")
        modules = read_json(modules_file)
        types = [str(m.get("type", "")) for m in modules]
        kinds = [t.rsplit(".", 1)[-1] for t in types]
        unsupported = [t for t, k in zip(types, kinds) if not t.startswith("sentence_transformers.") or k not in _SUPPORTED_MODULES]
        if unsupported:
            raise ModelUnavailable(
                f"the ONNX backend runs Transformer + Pooling (+ Normalize) models only; {name!r} also has {unsupported}"
            )
        if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
            raise ModelUnavailable(f"the ONNX backend expects Transformer then Pooling modules, not {kinds}")
        transformer_dir = root / (modules[0].get("path") or "")
        pooling = read_json(root / modules[1]["path"] / "config.json")
        modes = pooling_modes(pooling)
        st_config_file = transformer_dir / "sentence_bert_config.json"
        if not st_config_file.is_file():
            st_config_file = root / "sentence_bert_config.json"
        st_config = read_json(st_config_file) if st_config_file.is_file() else {}
        hf_config = read_json(transformer_dir / "config.json")
        hidden = int(hf_config.get("hidden_size") or pooling.get("embedding_dimension") or pooling["word_embedding_dimension"])
        # Prompts, as the torch backend reads them (sentence-transformers' `prompts`)
        st_model_config_file = root / "config_sentence_transformers.json"
        st_model_config = read_json(st_model_config_file) if st_model_config_file.is_file() else {}
        prompts = st_model_config.get("prompts") or {}
        default = prompts.get(st_model_config.get("default_prompt_name") or "")
        query_prompt = prompts.get("query") or default
        document_prompt = prompts.get("document") or prompts.get("passage") or default
        if pooling.get("include_prompt") is False and (query_prompt or document_prompt):
            raise ModelUnavailable("the ONNX backend does not support pooling that excludes the prompt")
        return cls(
            root=root,
            transformer_dir=transformer_dir,
            pooling_modes=modes,
            st_config=st_config,
            hf_config=hf_config,
            dimension=hidden * len(modes),
            query_prompt=query_prompt,
            document_prompt=document_prompt,
            count_prefix=prompts.get("document") or prompts.get("passage") or "",
        )
