"""The README's examples run as written, against a live server."""

from __future__ import annotations

import os
import re

from helpers import REPO

README = (REPO / "README.md").read_text()


def test_sdk_example_runs_against_kb(server, api_key, monkeypatch, capsys):
    section = README.split("## Using the ElevenLabs SDK", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.setenv("KB_API_KEY", api_key)
    monkeypatch.setenv("KB_URL", server.url)
    monkeypatch.chdir(REPO)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "Opening hours" in printed and "Zen of Python" in printed
    assert "closed on Sundays" in printed
    assert "Shop assistant" in printed
    with server.client(api_key) as client:
        assert client.get("/v1/convai/knowledge-base").json()["documents"] == []
    assert os.environ["KB_URL"] == server.url
