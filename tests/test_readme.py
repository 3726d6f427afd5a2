"""The README's examples run as written, against a live server set up as `kb serve` sets it up."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from helpers import REPO, LiveServer, data_dir_env, make_kb
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


def _section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _add_opening_hours(server, api_key) -> str:
    from helpers import add_text

    text = re.search(r'"name": "Opening hours", "text": "(.*?)"\}', README).group(1)
    with server.client(api_key) as client:
        return add_text(client, text, "Opening hours")


def test_mcp_client_example_runs_against_kb(default_server, monkeypatch, capsys):
    server, api_key = default_server
    _add_opening_hours(server, api_key)
    code = re.search(r"```python\n(.*?)```", _section("Connecting an MCP client"), re.S).group(1)
    monkeypatch.setenv("KB_API_KEY", api_key)
    monkeypatch.setenv("KB_URL", server.url)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "tools: ['search_knowledge_base', 'list_documents', 'get_document']"
    assert printed[1].startswith("Opening hours ") and printed[1].endswith(" from Opening hours")


def _run_bash(script: str, server, api_key, data_dir, **replace) -> list[dict]:
    import os
    import sys
    from pathlib import Path

    script = script.replace("$(cat data/default_api_key)", api_key).replace("http://127.0.0.1:8000", server.url)
    for placeholder, value in replace.items():
        script = script.replace(placeholder, value)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "KB_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO), "KEY": api_key,
           "PATH": f"{bin_dir}:{os.environ['PATH']}", **data_dir_env(data_dir)}
    done = subprocess.run(["bash", "-e", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.replace("}{", "}\n{").splitlines() if line.strip()]


def test_dify_curl_example_works(default_server, tmp_path):
    server, api_key = default_server
    hours = _add_opening_hours(server, api_key)
    script = re.search(r"```bash\n(.*?)```", _section("Adding kb to Dify"), re.S).group(1)
    (reply,) = _run_bash(script, server, api_key, tmp_path / "data")
    best = reply["records"][0]
    assert best["title"] == "Opening hours" and best["metadata"]["document_id"] == hours
    assert 0.5 <= best["score"] <= 1 and best["metadata"]["citation"] == "from Opening hours"
    assert "closed on Sundays" in best["content"]


def test_agent_record_curl_example_works(default_server, tmp_path):
    server, api_key = default_server
    hours = _add_opening_hours(server, api_key)
    with server.client(api_key) as client:
        agent_id = client.post("/v1/convai/agents/create", json={"conversation_config": {"agent": {"prompt": {
            "knowledge_base": [{"type": "text", "name": "Opening hours", "id": hours}],
            "rag": {"enabled": True}}}}}).json()["agent_id"]
    script = re.search(r"```bash\n(.*?)```", _section("The agent retrieval record"), re.S).group(1)
    (reply,) = _run_bash(script, server, api_key, tmp_path / "data", AGENT_ID=agent_id)
    assert reply["retrieval_query"] == "When is the shop open?\nand on Sundays?"
    assert reply["chunks"][0]["document_name"] == "Opening hours"
    assert reply["chunks"][0]["citation"] == "from Opening hours"
    info = reply["rag_retrieval_info"]
    assert info["retrieval_query"] == reply["retrieval_query"] and info["embedding_model"] == "e5_mistral_7b_instruct"
    assert info["used_chunk_ids"] == [c["chunk_id"] for c in reply["chunks"]]
