"""The README's examples run as written, against a live server set up as `kb serve` sets it up."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from helpers import REPO, LiveServer, make_kb
from kb.settings import DEFAULT_TIERS_FILE

README = (REPO / "README.md").read_text()


@pytest.fixture
def default_server(tmp_path):
    """Real tier limits and the `default` workspace, exactly as a newcomer gets them."""
    kb = make_kb(tmp_path / "data", tiers_file=DEFAULT_TIERS_FILE)
    _, api_key = kb.workspaces.ensure_default()
    server = LiveServer(kb).start()
    yield server, api_key
    server.stop()


def test_sdk_example_runs_against_kb(default_server, monkeypatch, capsys):
    server, api_key = default_server
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


def test_quick_start_curl_text_is_big_enough_to_be_indexed():
    """The quick start's text document must pass the default 500-byte minimum for RAG indexing."""
    text = re.search(r'"name": "Opening hours", "text": "(.*?)"\}', README).group(1)
    assert len(text.encode()) >= 500


def test_quick_start_curl_commands_work(default_server):
    server, api_key = default_server
    section = README.split("### Upload and retrieve with curl", 1)[1]
    script = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    script = script.replace("$(cat data/default_api_key)", api_key).replace("http://127.0.0.1:8000", server.url)
    done = subprocess.run(["bash", "-e", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    replies = [json.loads(line) for line in done.stdout.replace("}{", "}\n{").splitlines() if line.strip()]
    uploads, retrievals = replies[:2], replies[2:]
    assert [u["name"] for u in uploads] == ["Opening hours", "google-doc-document.pdf"]
    assert retrievals[0]["chunks"][0]["document_name"] == "Opening hours"
    assert "closed on Sundays" in retrievals[0]["chunks"][0]["text"]
    assert retrievals[1]["chunks"][0]["document_name"] == "google-doc-document.pdf"
