"""Agent retrieval (`POST /v1/convai/agents/{id}/rag/retrieve`) over real HTTP: ElevenLabs' retrieval
record (`rag_retrieval_info`), follow-up questions in the context of the recent `messages`, and
speakable citations (a PDF with pages, Markdown with headings, a German document).

One server and one workspace for the module, only read by the tests.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator

import httpx
import pypdf
import pytest
from elevenlabs.types import EmbeddingModelEnum, RagRetrievalInfo

from helpers import CORPUS, LiveServer, add_text, make_kb, wait_indexed

KB = "/v1/convai/knowledge-base"
AGENTS = "/v1/convai/agents"
PDF = CORPUS / "pdf" / "pdflatex-4-pages.pdf"
HOURS = ("Pharmacy opening hours. The pharmacy on Main Street is open Monday to Friday from 8 am to 7 pm and on "
         "Saturdays from 9 am to 1 pm. On Sundays it is closed, except for the emergency service.")
BRUNCH = ("Weekend brunch at the café. Every Sunday we serve pancakes, eggs and fresh orange juice from ten until "
          "two. Sundays are busy: book a table on Sundays.")
RETURNS = ("# Returns policy\n\n## Refunds\n\n"
           + "Items can be returned within 30 days of purchase for a full refund to the original payment method. "
           "Refunds are issued within five business days after the item arrives at our warehouse, and the bank may "
           "take a few more days to show the money on your statement. Keep the receipt: without it we can only "
           "offer a gift card for the current price. Sale items are refunded at the price paid. " * 3
           + "\n\n## Exchanges\n\n"
           + "Exchanges for another size or colour are free of charge in every store, as long as the item is unworn "
           "and still has its labels. Online orders can be exchanged by post with the prepaid label in the parcel. "
           "If the size you want is sold out, the store orders it for you and calls you when it arrives. " * 3)
RUECKGABE = ("# Rückgaberichtlinie\n\n## Erstattungen\n\n"
             + "Waren können innerhalb von dreißig Tagen nach dem Kauf zurückgegeben werden. Die Erstattung erfolgt "
             "innerhalb von fünf Werktagen auf das ursprüngliche Zahlungsmittel, sobald die Ware in unserem Lager "
             "eingetroffen ist. Ihre Bank braucht unter Umständen einige weitere Tage, bis der Betrag auf dem "
             "Kontoauszug erscheint. Bewahren Sie den Kassenbon auf: ohne ihn erhalten Sie nur einen Gutschein. " * 3
             + "\n\n## Umtausch\n\n"
             + "Der Umtausch in eine andere Größe oder Farbe ist in jeder Filiale kostenlos, solange die Ware "
             "ungetragen ist und ihre Etiketten noch hat. Online-Bestellungen können mit dem beiliegenden "
             "Rücksendeetikett per Post umgetauscht werden. Ist die gewünschte Größe ausverkauft, bestellt die "
             "Filiale sie für Sie und ruft Sie an, sobald sie eingetroffen ist. " * 3)
FOLLOW_UP = "and on Sundays?"
PREVIOUS = "When is the pharmacy open?"


@pytest.fixture(scope="module")
def rkb(tmp_path_factory):
    instance = make_kb(tmp_path_factory.mktemp("record") / "data")
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def server(rkb) -> Iterator[LiveServer]:
    live = LiveServer(rkb).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server, rkb) -> Iterator[httpx.Client]:
    with server.client(rkb.workspaces.create("shop")[1]) as http:
        yield http


def upload(client: httpx.Client, name: str, filename: str, content: bytes) -> str:
    response = client.post(f"{KB}/file", files={"file": (filename, content)}, data={"name": name})
    assert response.status_code == 200, response.text
    assert wait_indexed(client, response.json()["id"])["status"] == "succeeded"
    return response.json()["id"]


@pytest.fixture(scope="module")
def docs(client) -> dict[str, str]:
    return {
        "hours": add_text(client, HOURS, "Pharmacy hours"),
        "brunch": add_text(client, BRUNCH, "Brunch menu"),
        "returns": upload(client, "Returns policy", "returns.md", RETURNS.encode()),
        "rueckgabe": upload(client, "Rückgaberichtlinie", "rueckgabe.md", RUECKGABE.encode()),
        "pdf": upload(client, "Font guide", "pdflatex-4-pages.pdf", PDF.read_bytes()),
    }


def make_agent(client: httpx.Client, docs: dict[str, str], **rag) -> str:
    locators = [{"type": "file" if key in ("returns", "rueckgabe", "pdf") else "text", "name": key, "id": doc_id,
                 "usage_mode": "auto"} for key, doc_id in docs.items()]
    response = client.post(f"{AGENTS}/create", json={"conversation_config": {"agent": {"prompt": {
        "prompt": "You answer questions about our shop.", "knowledge_base": locators,
        "rag": {"enabled": True, "max_vector_distance": 1.0, "max_retrieved_rag_chunks_count": 3, **rag}}}}})
    assert response.status_code == 200, response.text
    return response.json()["agent_id"]


@pytest.fixture(scope="module")
def agent(client, docs) -> str:
    return make_agent(client, docs)


def ask(client: httpx.Client, agent_id: str, query: str, **body) -> dict:
    response = client.post(f"{AGENTS}/{agent_id}/rag/retrieve", json={"query": query, **body})
    assert response.status_code == 200, response.text
    return response.json()


def first_document(reply: dict) -> str:
    assert reply["chunks"], reply
    return reply["chunks"][0]["document_id"]


# --- the record -----------------------------------------------------------------------------------


def assert_record_matches(reply: dict) -> dict:
    info = reply["rag_retrieval_info"]
    assert set(info) == {"chunks", "embedding_model", "retrieval_query", "rag_latency_secs", "used_chunk_ids"}
    assert info["chunks"] == [{"document_id": c["document_id"], "chunk_id": c["chunk_id"],
                               "vector_distance": c["vector_distance"]} for c in reply["chunks"]]
    assert info["used_chunk_ids"] == [c["chunk_id"] for c in reply["chunks"]]
    assert info["embedding_model"] == reply["embedding_model"]
    assert info["retrieval_query"] == reply["retrieval_query"]
    assert info["rag_latency_secs"] == reply["rag_latency_secs"] and 0 < info["rag_latency_secs"] < 60
    parsed = RagRetrievalInfo.model_validate(info)  # the ElevenLabs SDK's own type
    assert [c.chunk_id for c in parsed.chunks] == info["used_chunk_ids"]
    return info


def test_record_of_a_retrieval(client, docs, agent):
    reply = ask(client, agent, PREVIOUS)
    info = assert_record_matches(reply)
    assert 1 <= len(info["chunks"]) <= 3  # the agent's max_retrieved_rag_chunks_count
    assert info["chunks"][0]["document_id"] == docs["hours"]
    assert all(0 <= c["vector_distance"] <= 1.0 for c in info["chunks"])  # the agent's max_vector_distance
    assert info["chunks"][0]["chunk_id"].startswith("ch_")
    assert info["retrieval_query"] == PREVIOUS
    # an agent naming no model searches the workspace's default, recorded as the ElevenLabs name it serves
    assert info["embedding_model"] in typing.get_args(typing.get_args(EmbeddingModelEnum)[0])
    assert reply["served_model"] == "all-MiniLM-L6-v2"
    # the chunks are the ones kb's own retrieval ranks first among the agent's documents
    plain = client.post(f"{KB}/rag/retrieve", json={"query": PREVIOUS, "max_vector_distance": 1.0,
                                                   "max_retrieved_rag_chunks_count": 3}).json()
    assert info["used_chunk_ids"] == [c["chunk_id"] for c in plain["chunks"]]


def test_record_names_the_agents_model_and_limits(client, docs):
    agent_id = make_agent(client, docs, embedding_model="all-MiniLM-L6-v2", max_retrieved_rag_chunks_count=1)
    reply = ask(client, agent_id, "How long do refunds take?")
    info = assert_record_matches(reply)
    assert info["embedding_model"] == "all-MiniLM-L6-v2" and reply["served_model"] == "all-MiniLM-L6-v2"
    assert [c["document_id"] for c in info["chunks"]] == [docs["returns"]]
    more = assert_record_matches(ask(client, agent_id, "How long do refunds take?", max_retrieved_rag_chunks_count=4))
    assert len(more["chunks"]) == 4 and more["chunks"][0] == info["chunks"][0]


def test_no_record_when_rag_is_disabled(client, docs):
    agent_id = make_agent(client, docs, enabled=False)
    reply = ask(client, agent_id, PREVIOUS, messages=[{"role": "user", "content": "hello"}])
    assert reply["rag_enabled"] is False and reply["chunks"] == [] and reply["rag_retrieval_info"] is None


# --- follow-ups -----------------------------------------------------------------------------------


def test_a_follow_up_is_retrieved_in_the_context_of_the_previous_user_turn(client, docs, agent):
    alone = ask(client, agent, FOLLOW_UP)
    assert assert_record_matches(alone)["retrieval_query"] == FOLLOW_UP
    assert first_document(alone) == docs["brunch"]  # "Sundays" alone: the brunch menu

    turns = [{"role": "user", "content": PREVIOUS},
             {"role": "agent", "content": "From 8 am to 7 pm on weekdays and 9 am to 1 pm on Saturdays."}]
    with_context = ask(client, agent, FOLLOW_UP, messages=turns)
    info = assert_record_matches(with_context)
    assert info["retrieval_query"] == f"{PREVIOUS}\n{FOLLOW_UP}"
    assert first_document(with_context) == docs["hours"]
    assert "Sundays it is closed" in with_context["chunks"][0]["text"]

    # the current turn may also be the last message; the same query is searched
    same = ask(client, agent, FOLLOW_UP, messages=[*turns, {"role": "user", "content": FOLLOW_UP}])
    assert same["retrieval_query"] == info["retrieval_query"] and same["chunks"] == with_context["chunks"]
    # the previous *user* turn counts: the last one, whatever the agent said
    older = [{"role": "user", "content": "Do you serve pancakes at the café?"}, *turns]
    assert ask(client, agent, FOLLOW_UP, messages=older)["retrieval_query"] == f"{PREVIOUS}\n{FOLLOW_UP}"
    agent_only = ask(client, agent, FOLLOW_UP, messages=[{"role": "assistant", "content": PREVIOUS}])
    assert agent_only["retrieval_query"] == FOLLOW_UP and first_document(agent_only) == docs["brunch"]


def test_a_full_question_is_not_rewritten(client, docs, agent):
    question = "What do you serve at the café for brunch on Sunday mornings?"  # more than eight words
    reply = ask(client, agent, question, messages=[{"role": "user", "content": PREVIOUS}])
    assert assert_record_matches(reply)["retrieval_query"] == question
    assert first_document(reply) == docs["brunch"]


def test_the_query_strategy_is_the_callers_choice(client, docs, agent):
    """`short` (default) joins the previous user turn to a short query only; `concat` to any query;
    `last` never. An unknown strategy is a 422 naming the field."""
    question = "What do you serve at the café for brunch on Sunday mornings?"
    turns = [{"role": "user", "content": PREVIOUS}]
    concat = ask(client, agent, question, messages=turns, query_strategy="concat")
    assert assert_record_matches(concat)["retrieval_query"] == f"{PREVIOUS}\n{question}"
    last = ask(client, agent, FOLLOW_UP, messages=turns, query_strategy="last")
    assert assert_record_matches(last)["retrieval_query"] == FOLLOW_UP and first_document(last) == docs["brunch"]
    response = client.post(f"{AGENTS}/{agent}/rag/retrieve",
                           json={"query": FOLLOW_UP, "messages": turns, "query_strategy": "rewrite"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] == "query_strategy"


@pytest.mark.parametrize(("messages", "loc", "words"), [
    ([{"role": "system", "content": "hi"}], ["messages", 0, "role"], ["'user', 'agent' or 'assistant'"]),
    ([{"role": "user", "content": 5}], ["messages", 0, "content"], ["valid string"]),
    ([{"role": "user", "content": None}], ["messages", 0, "content"], ["valid string"]),
    ([{"role": "user"}], ["messages", 0, "content"], ["required"]),
    ([{"content": "hi"}], ["messages", 0, "role"], ["required"]),
    ([{"role": "user", "content": "hi"}, "and on Sundays?"], ["messages", 1], ["valid dictionary"]),
    ("and on Sundays?", ["messages"], ["valid list"]),
    ([{"role": "user", "content": "hi"}] * 51, ["messages"], ["at most 50 items"]),
    ([{"role": "user", "content": "x" * 10_001}], ["messages", 0, "content"], ["at most 10000 characters"]),
])
def test_bad_messages_are_422_naming_the_field(client, agent, messages, loc, words):
    response = client.post(f"{AGENTS}/{agent}/rag/retrieve", json={"query": FOLLOW_UP, "messages": messages})
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    error = next((e for e in errors if e["loc"][1:] == loc), None)
    assert error is not None, errors
    for word in words:
        assert word in error["msg"], error


def test_limits_of_messages_are_accepted_at_the_edge(client, docs, agent):
    edge = [{"role": "agent", "content": "x" * 10_000}] * 49 + [{"role": "user", "content": PREVIOUS}]
    reply = ask(client, agent, FOLLOW_UP, messages=edge)
    assert reply["retrieval_query"] == f"{PREVIOUS}\n{FOLLOW_UP}" and first_document(reply) == docs["hours"]


# --- citations ------------------------------------------------------------------------------------


def pages_of(chunk: dict) -> str:
    first, last = chunk["page_start"], chunk["page_end"]
    return f"page {first}" if first == last else f"pages {first} to {last}"


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def test_citations_name_the_document_page_and_section(client, docs, agent):
    refunds = ask(client, agent, "How long do refunds take?", citations=True)
    returns = [c for c in refunds["chunks"] if c["document_id"] == docs["returns"]]
    assert refunds["chunks"][0]["document_id"] == docs["returns"] and len(returns) == 2
    for chunk in returns:
        section = chunk["heading_path"][-1]
        assert section in ("Returns policy", "Refunds", "Exchanges")
        # a section that only repeats the document's name (the chunk under "# Returns policy") is not spoken
        expected = "from the Returns policy" + ("" if section == "Returns policy" else f", section {section}")
        assert chunk["citation"] == expected
        assert chunk["page_start"] is None  # Markdown has no pages: none is spoken
    assert "from the Returns policy, section Exchanges" in {c["citation"] for c in returns}

    blind = ask(client, agent, "Huardest gefburn Kjift blind text letters of the alphabet", citations=True)
    pdf_chunks = [c for c in blind["chunks"] if c["document_id"] == docs["pdf"]]
    assert pdf_chunks, blind
    reader = pypdf.PdfReader(PDF)
    for chunk in pdf_chunks:
        assert 1 <= chunk["page_start"] <= chunk["page_end"] <= len(reader.pages)
        assert chunk["citation"] == f"from the Font guide, {pages_of(chunk)}"
        # the chunk's words are on the pages its citation names
        on_pages = words(" ".join(reader.pages[p - 1].extract_text()
                                  for p in range(chunk["page_start"], chunk["page_end"] + 1)))
        chunk_words = words(chunk["text"])
        assert chunk_words and " ".join(chunk_words[:8]) in " ".join(on_pages)
        assert " ".join(chunk_words[-8:]) in " ".join(on_pages)

    # without citations: none
    plain = ask(client, agent, "How long do refunds take?")
    assert all(c.get("citation") is None for c in plain["chunks"])
    assert [c["chunk_id"] for c in plain["chunks"]] == [c["chunk_id"] for c in refunds["chunks"]]


def test_citations_in_the_documents_language(client, docs, agent):
    reply = ask(client, agent, "Wie lange dauert die Erstattung auf das Zahlungsmittel?", citations=True)
    german = [c for c in reply["chunks"] if c["document_id"] == docs["rueckgabe"]]
    assert german and reply["chunks"][0]["document_id"] == docs["rueckgabe"]
    for chunk in german:
        section = chunk["heading_path"][-1]
        assert section in ("Rückgaberichtlinie", "Erstattungen", "Umtausch")
        assert chunk["citation"] == "aus Rückgaberichtlinie" + ("" if section == "Rückgaberichtlinie"
                                                                 else f", Abschnitt {section}")
    assert "Erstattung" in german[0]["text"]
    # the English documents of the same reply keep English citations
    for chunk in reply["chunks"]:
        if chunk["document_id"] in (docs["returns"], docs["hours"], docs["brunch"]):
            assert chunk["citation"].startswith("from ")


PHRASEBOOK = ("# Travel phrasebook\n\n## Asking the way\n\n"
              + "When you are lost in a foreign city, ask a shop keeper or a police officer for the way. Say where "
              "you want to go, show the address on your phone, and listen for the words left, right and straight "
              "on. Most people are glad to help a visitor who tries to speak their language, even a little. " * 6
              + "\n\n## German phrases\n\n"
              + "Entschuldigung, wo ist der Bahnhof? Gehen Sie geradeaus und dann die zweite Straße links. Wie "
              "viel kostet eine Fahrkarte nach München? Ich hätte gern ein Glas Wasser, bitte. " * 3)


def test_one_document_one_language(client):
    """An English document with a German section: every citation of it is English (the document's
    language, detected from its whole text), the German chunk's included."""
    doc_id = upload(client, "Travel phrasebook", "phrasebook.md", PHRASEBOOK.encode())
    document = client.get(f"{KB}/{doc_id}").json()
    assert document["attributes"]["language"] == "en"
    agent_id = make_agent(client, {"phrasebook": doc_id}, max_retrieved_rag_chunks_count=10, max_vector_distance=2.0)
    reply = ask(client, agent_id, "Wo ist der Bahnhof? Wie viel kostet eine Fahrkarte nach München?", citations=True)
    sections = {c["heading_path"][-1]: c["citation"] for c in reply["chunks"]}
    assert "German phrases" in sections and "Bahnhof" in reply["chunks"][0]["text"], reply["chunks"]
    assert sections["German phrases"] == "from Travel phrasebook, section German phrases"
    assert all(c["citation"].startswith("from Travel phrasebook") for c in reply["chunks"])
