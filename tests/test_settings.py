"""Settings in sections: environment names derived from the fields, every one documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from helpers import REPO
from kb.settings import SECTIONS, Settings, env_names, load_settings

README = (REPO / "README.md").read_text()


def _configuration_table() -> set[str]:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(KB_[A-Z_]+)` \|", section, re.M))


def test_every_setting_is_documented_in_the_readme_configuration_table():
    documented = _configuration_table()
    assert set(env_names()) - documented == set(), "settings missing from the README's Configuration table"
    assert documented - set(env_names()) == set(), "the README documents settings that do not exist"


def test_environment_names_are_the_field_names():
    for cls in SECTIONS.values():
        for f in dataclasses.fields(cls):
            assert f"KB_{f.name.upper()}" in env_names()


def test_values_are_read_by_their_field_types():
    settings = load_settings(environ={
        "KB_PORT": "9001", "KB_EMBED_CONTEXT": "yes", "KB_INDEX_CACHE_MB": "12.5", "KB_DATA_DIR": "/tmp/x",
        "KB_URL_ALLOW_HOSTS": "a.example, b.example", "KB_MODELS": "extra=/models/extra", "KB_WORKERS": "0",
    })
    assert settings.server.port == 9001 and settings.index.embed_context is True
    assert settings.index.index_cache_mb == 12.5 and settings.storage.data_dir == Path("/tmp/x")
    assert settings.ingest.url_allow_hosts == ("a.example", "b.example")
    assert settings.embedding.models["extra"] == "/models/extra" and "all-MiniLM-L6-v2" in settings.embedding.models
    assert settings.jobs.workers == 0


def test_explicit_values_win_over_the_environment_and_unknown_names_are_refused():
    settings = load_settings(environ={"KB_PORT": "9001"}, port=9002, host=None)
    assert settings.server.port == 9002 and settings.server.host == "127.0.0.1"
    with pytest.raises(TypeError, match="unknown setting"):
        Settings.build(no_such_setting=1)


@pytest.mark.parametrize("variable, value, message", [
    ("KB_WORKERS", "-1", "KB_WORKERS"),
    ("KB_EMBED_BACKEND", "gpu", "KB_EMBED_BACKEND"),
    ("KB_VECTOR_STORE", "annoy", "KB_VECTOR_STORE"),
    ("KB_PORT", "eighty", "KB_PORT"),
    ("KB_DEFAULT_TIER", "platinum", "platinum"),
])
def test_settings_that_cannot_work_are_refused_naming_the_variable(variable, value, message):
    with pytest.raises(ValueError, match=message):
        load_settings(environ={variable: value})
