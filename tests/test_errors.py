"""One error tree: kb's errors carry codes and no HTTP status; api/ maps every code in one table;
batch endpoints answer for each item and carry on."""

from __future__ import annotations

import ingest.errors
import kb.errors as kb_errors
from api.errors import STATUS_BY_CODE
from helpers import add_text

KB = "/v1/convai/knowledge-base"


def _subclasses(cls: type) -> list[type]:
    return [cls] + [c for sub in cls.__subclasses__() for c in _subclasses(sub)]


def test_every_error_code_has_its_status_in_the_api_table():
    codes = {c.code for c in _subclasses(kb_errors.KBError)} | {c.code for c in _subclasses(ingest.errors.IngestError)}
    assert codes - set(STATUS_BY_CODE) == set()
    assert not any(hasattr(c, "status") for c in _subclasses(kb_errors.KBError) + _subclasses(ingest.errors.IngestError))


def test_ingest_errors_reach_callers_as_kb_errors_with_their_code(kb):
    workspace, _ = kb.workspaces.create("errors")
    try:
        kb.documents.add_file(workspace, b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image.png", "image/png")
    except kb_errors.KBError as exc:
        assert exc.code == "unsupported_format" and "pdf" in exc.details["supported_formats"]
    else:
        raise AssertionError("an image was accepted")


def test_bulk_move_moves_what_it_can_and_reports_the_rest(client):
    folder = client.post(f"{KB}/folder", json={"name": "box"}).json()["id"]
    inner = client.post(f"{KB}/folder", json={"name": "inner", "parent_folder_id": folder}).json()["id"]
    doc = add_text(client, "A note about lighthouses and their keepers on stormy nights.", "note", wait=False)
    result = client.post(f"{KB}/bulk-move", json={"document_ids": [doc, "nope", folder], "move_to": inner})
    assert result.status_code == 200
    body = result.json()
    assert body[doc] == {"status": "success", "data": {"id": doc}}
    assert body["nope"]["status"] == "failure" and body["nope"]["error_code"] == 404
    assert body[folder]["error_code"] == 400 and "into itself" in body[folder]["error_message"]
    assert client.get(f"{KB}/{doc}").json()["folder_parent_id"] == inner
    assert client.get(f"{KB}/{folder}").json()["folder_parent_id"] is None
    assert client.post(f"{KB}/bulk-move", json={"document_ids": [doc], "move_to": "missing"}).status_code == 404


def test_bulk_dependent_agents_reports_unknown_documents_and_carries_on(client):
    doc = add_text(client, "Opening hours of the shop: nine to six on weekdays.", "hours", wait=False)
    agent = client.post("/v1/convai/agents/create", json={"name": "clerk", "conversation_config": {"agent": {"prompt": {
        "knowledge_base": [{"type": "text", "name": "hours", "id": doc}]}}}}).json()["agent_id"]
    result = client.post(f"{KB}/dependent-agents", json={"document_ids": [doc, "nope"]})
    assert result.status_code == 200
    body = result.json()
    assert [a["id"] for a in body["agents"]] == [agent]
    assert body["errors"]["nope"]["error_code"] == 404


def test_summaries_report_each_document(client):
    doc = add_text(client, "A short text about tides and the moon.", "tides", wait=False)
    body = client.get(f"{KB}/summaries", params=[("document_ids", doc), ("document_ids", "nope")]).json()
    assert body[doc]["status"] == "success" and body[doc]["data"]["name"] == "tides"
    assert body["nope"]["status"] == "failure" and body["nope"]["error_code"] == 404
