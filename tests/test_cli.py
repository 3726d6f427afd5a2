"""The `kb` command line: workspaces, extract, ingest, query and reindex on a shared data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, LiveServer, data_dir_env, invoke_cli, make_kb, retrieve

KB_BIN = Path(sys.executable).parent / "kb"

# One real file of each format, the format it must be detected as, and a phrase of its text.
ONE_FILE_PER_FORMAT = {
    "pdf/google-doc-document.pdf": ("pdf", "Errors should never pass silently"),
    "docx/txt-font-props.docx": ("docx", "Paragraph in ‘Large Size’ style."),
    "epub/moby-dick.epub": ("epub", "Call me Ishmael."),
    "html/blog.python.org.html": ("html", "Python"),
}


def run(*args: str) -> str:
    result = invoke_cli(list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_workspace_create_prints_id_and_key(tmp_path):
    out = json.loads(run("workspace", "create", "acme", "--tier", "pro", "--data-dir", str(tmp_path)))
    assert out["workspace_id"].startswith("ws_") and out["api_key"].startswith("kb_")
    kb = make_kb(tmp_path)
    try:
        workspace = kb.workspaces.authenticate(out["api_key"])
        assert (workspace.id, workspace.name, workspace.tier) == (out["workspace_id"], "acme", "pro")
    finally:
        kb.close()
    bad = invoke_cli(["workspace", "create", "x", "--tier", "gold", "--data-dir", str(tmp_path)])
    assert bad.exit_code != 0 and "unknown tier" in bad.output


@pytest.mark.parametrize("relative", sorted(ONE_FILE_PER_FORMAT))
def test_extract_prints_text_of_each_format(corpus, relative):
    fmt, phrase = ONE_FILE_PER_FORMAT[relative]
    out = run("extract", str(corpus / relative))
    assert phrase in out
    detail = json.loads(run("extract", "--json", str(corpus / relative)))
    assert detail["format"] == fmt
    assert detail["text"].strip() == out.strip()


def test_extract_text_and_markdown(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# Title\n\nSome *markdown* body text.\n")
    detail = json.loads(run("extract", "--json", str(notes)))
    assert detail["format"] == "markdown" and "body text" in detail["text"]
    plain = tmp_path / "plain.txt"
    plain.write_text("Just a plain text file.\n")
    assert "plain text file" in run("extract", str(plain))


def test_extract_reports_bad_input():
    result = invoke_cli(["extract", "/no/such/file.pdf"])
    assert result.exit_code != 0 and "no such file" in result.output


def test_ingest_directory_query_and_reindex_give_same_results(tmp_path, corpus):
    data = str(tmp_path / "data")
    ws = json.loads(run("workspace", "create", "docs", "--data-dir", data))["workspace_id"]
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "whales.txt").write_text("Blue whales eat krill and can weigh two hundred tonnes.")
    (docs / "sub" / "bread.md").write_text("# Baking\n\nSourdough bread needs flour, water, salt and a starter.")
    (docs / "sub" / "junk.bin").write_bytes(bytes(range(256)) * 8)

    result = invoke_cli(["ingest", "--workspace", ws, str(docs), "--data-dir", data])
    assert result.exit_code == 1  # junk.bin was skipped
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["added"], summary["indexed"], summary["skipped"]) == (2, 2, 1)
    assert "junk.bin" in result.stderr

    before = json.loads(run("query", "--workspace", "docs", "--json", "what do whales eat", "--data-dir", data))
    assert before[0]["document_name"] == "whales.txt"
    assert "krill" in run("query", "--workspace", ws, "what do whales eat", "--data-dir", data)

    rebuilt = json.loads(run("reindex", "--workspace", ws, "--data-dir", data))
    assert rebuilt["vectors"] == {"all-MiniLM-L6-v2": 2}
    after = json.loads(run("query", "--workspace", ws, "--json", "what do whales eat", "--data-dir", data))
    assert after == before

    re_embedded = json.loads(run("reindex", "--workspace", ws, "--re-embed", "--data-dir", data))
    assert re_embedded["vectors"] == {"all-MiniLM-L6-v2": 2}
    again = json.loads(run("query", "--workspace", ws, "--json", "what do whales eat", "--data-dir", data))
    assert [(h["document_id"], h["text"]) for h in again] == [(h["document_id"], h["text"]) for h in before]
    assert [h["vector_distance"] for h in again] == pytest.approx([h["vector_distance"] for h in before], abs=1e-5)


def test_running_server_serves_an_index_rebuilt_by_another_process(tmp_path):
    """`kb reindex` in a separate process; the live server picks up the new index without a restart."""
    data = tmp_path / "data"
    kb = make_kb(data)
    server = LiveServer(kb).start()
    try:
        workspace, key = kb.workspaces.create("live")
        with server.client(key) as client:
            for name, text in [("owls", "Owls hunt at night and can turn their heads very far."),
                               ("tea", "Green tea is brewed with water below boiling point.")]:
                client.post("/v1/convai/knowledge-base/text", json={"text": text, "name": name}).raise_for_status()
            _wait_all_indexed(client)
            before = retrieve(client, "nocturnal birds of prey")["chunks"]
            generation_before = kb.vectors.current_generation(workspace.id, "all-MiniLM-L6-v2")

            # Remove the index files: the rebuild must come from stored embeddings alone.
            for path in (data / "indexes").rglob("*.faiss"):
                path.unlink()
            env = {**os.environ, "KB_DATA_DIR": str(data), **data_dir_env(data)}
            done = subprocess.run([str(KB_BIN), "reindex", "--workspace", workspace.id], env=env, cwd=REPO,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr

            assert kb.vectors.current_generation(workspace.id, "all-MiniLM-L6-v2") == generation_before + 1
            after = retrieve(client, "nocturnal birds of prey")["chunks"]
            assert [(c["chunk_id"], c["text"]) for c in after] == [(c["chunk_id"], c["text"]) for c in before]
            assert after[0]["document_name"] == "owls"
    finally:
        server.stop()


def _wait_all_indexed(client) -> None:
    from helpers import wait_indexed

    for doc in client.get("/v1/convai/knowledge-base").json()["documents"]:
        assert wait_indexed(client, doc["id"])["status"] == "succeeded"
