"""Reading settings from `KB_*` environment variables: names and types come from the section fields."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .sections import SECTIONS, default_model_aliases, default_models


def env_name(field_name: str) -> str:
    return "KB_" + field_name.upper()


def parse_models(value: str) -> dict[str, str]:
    """`name=source,name2=source2`; entries add to (or replace) the defaults."""
    models = default_models()
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, source = item.partition("=")
        if not sep:
            raise ValueError(f"KB_MODELS entry {item!r} must look like name=path_or_hf_id")
        models[name.strip()] = source.strip()
    return models


def parse_model_aliases(value: str) -> dict[str, str]:
    """`name=model,name2=model2`; entries add to (or replace) the defaults, `name=` removes one."""
    aliases = default_model_aliases()
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, target = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"KB_MODEL_ALIASES entry {item!r} must look like name=model (or name= to remove one)")
        if target.strip():
            aliases[name.strip()] = target.strip()
        else:
            aliases.pop(name.strip(), None)
    return aliases


# Fields whose variable is not read by its type alone.
FIELD_PARSERS: dict[str, Callable[[str], Any]] = {"models": parse_models, "model_aliases": parse_model_aliases}


def _parser(hint: Any) -> Callable[[str], Any]:
    """How to read one variable, from the field's type (`X | None` reads as X)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType")) and len(args) == 1:
        hint = args[0]
    if hint is bool:
        return lambda raw: raw.strip().lower() in ("1", "true", "yes", "on")
    if hint in (int, float, str, Path):
        return hint
    if typing.get_origin(hint) is tuple:
        return lambda raw: tuple(part.strip() for part in raw.split(",") if part.strip())
    raise TypeError(f"no environment parser for settings of type {hint!r}")


def field_owners() -> dict[str, str]:
    """Field name -> the section that holds it (field names are unique across sections)."""
    owners: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f.name not in owners, f"setting {f.name} is in two sections"
            owners[f.name] = section
    return owners


def from_environment(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The values set in `env`, by section and field."""
    values: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            raw = env.get(env_name(f.name))
            if raw is None or raw == "":
                continue
            try:
                parse = FIELD_PARSERS.get(f.name) or _parser(hints[f.name])
                values[section][f.name] = parse(raw)
            except ValueError as exc:
                raise ValueError(f"{env_name(f.name)}={raw!r}: {exc}") from None
    return values
