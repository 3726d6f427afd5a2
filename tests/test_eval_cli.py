"""`kb eval`: a questions file scored against a real workspace (the six support documents of
bench/data/support6 and a PDF, ingested with `kb ingest`, the real model), its figures, floors and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import CORPUS, REPO, data_dir_env, invoke_cli
from kb.evaluation.report import passage_in

SUPPORT6 = REPO / "bench" / "data" / "support6"
PDF = CORPUS / "pdf" / "google-doc-document.pdf"
MODES = ("hybrid", "dense", "lexical")


def _support6() -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    texts = {row["_id"]: row["text"] for row in map(json.loads, (SUPPORT6 / "corpus.jsonl").read_text().splitlines())}
    queries = {row["_id"]: row["text"]
               for row in map(json.loads, (SUPPORT6 / "queries.jsonl").read_text().splitlines())}
    qrels = [line.split("\t") for line in next((SUPPORT6 / "qrels").iterdir()).read_text().splitlines()[1:] if line]
    return texts, [(qid, queries[qid], f"{doc}.txt") for qid, doc, _ in qrels]


TEXTS, QUESTIONS = _support6()


def kb_eval(data: Path, *args: str) -> subprocess.CompletedProcess:
    """The real `kb` command line in its own process (the worktree's kb first on the path)."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "KB_DATA_DIR": str(data), "PYTHONPATH": path, **data_dir_env(data)}
    return subprocess.run([sys.executable, "-m", "kb.cli", "eval", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def cli(*args: str):
    return invoke_cli(list(args), catch_exceptions=False)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A data dir with workspace `support`: six text documents and a PDF, indexed."""
    root = tmp_path_factory.mktemp("eval")
    docs = root / "docs"
    docs.mkdir()
    for name, text in TEXTS.items():
        (docs / f"{name}.txt").write_text(text)
    (docs / PDF.name).write_bytes(PDF.read_bytes())
    data = root / "data"
    assert cli("workspace", "create", "support", "--data-dir", str(data)).exit_code == 0
    ingested = cli("ingest", "--workspace", "support", str(docs), "--data-dir", str(data))
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout.strip().splitlines()[-1])["indexed"] == 7
    return data


def good_questions() -> list[dict]:
    rows = [{"id": qid, "query": query, "expected_documents": [doc]} for qid, query, doc in QUESTIONS]
    rows.append({"id": "zen", "query": "should errors pass silently", "expected_documents": [PDF.name],
                 "expected_passages": ["Errors should  never pass SILENTLY"]})  # case and whitespace ignored
    rows.append({"id": "descale", "query": "what do I descale the kettle with",
                 "expected_passages": ["equal parts water and white vinegar"]})
    rows.append({"id": "absent", "query": "what is the capital of Australia"})
    return rows


def table(stdout: str) -> dict[str, list[str]]:
    """The printed per-mode rows: mode -> its cells."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.replace(" *", "").split()
        if cells and cells[0] in MODES and len(cells) == 8:
            rows[cells[0]] = cells[1:]
    return rows


def test_good_questions_score_high_floors_pass_and_json_matches_the_table(data, tmp_path):
    questions = write_jsonl(tmp_path / "good.jsonl", good_questions())
    out = tmp_path / "eval.json"
    done = kb_eval(data, str(questions), "--workspace", "support", "--json", str(out), "--min-ndcg", "0.8",
                   "--min-recall", "0.8", "--min-mrr", "0.8", "--min-answered", "0.8", "--min-delivered", "0.8")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "evaluating" in done.stderr  # the progress bar
    report = json.loads(out.read_text())
    assert report["workspace"] == "support" and report["model"] == "all-MiniLM-L6-v2" and report["passed"]
    assert [c["metric"] for c in report["floors"]] == ["ndcg", "recall", "mrr", "answered", "delivered"]
    assert all(c["met"] and c["mode"] == "hybrid" for c in report["floors"])
    printed = table(done.stdout)
    assert set(printed) == set(MODES) == set(report["modes"])
    for mode, figures in report["modes"].items():
        assert figures["questions"] == 8
        assert figures["ndcg"] >= 0.8 and figures["recall"] >= 0.8 and figures["mrr"] >= 0.8, (mode, figures)
        assert figures["absent_emptied"] == 1.0  # the question about Australia gets nothing at the default cut
        assert 0 < figures["latency_p50_ms"] < 1000
        expected = [f"{figures[m]:.3f}" for m in ("ndcg", "recall", "mrr", "answered", "delivered", "absent_emptied")]
        assert printed[mode][:6] == expected and printed[mode][6] == f"{figures['latency_p50_ms']:.1f}"
    assert report["modes"]["hybrid"]["answered"] == report["modes"]["hybrid"]["delivered"] == 1.0
    suggestion = report["suggestion"]
    assert suggestion["mode"] == "hybrid" and suggestion["answers"] == 8
    assert 0.2 < suggestion["max_vector_distance"] < 1.0
    assert f"suggested max_vector_distance: {suggestion['max_vector_distance']:.2f}" in done.stdout
    assert suggestion["at_suggested"]["answers_kept"] >= 0.95
    assert suggestion["at_current"]["cut"] == report["max_vector_distance"]
    assert suggestion["at_suggested"]["others_removed"] > 0.5  # the other documents lie farther than the answers
    by_id = {(q["id"], q["mode"]): q for q in report["per_question"]}
    assert by_id[("zen", "hybrid")]["top"][0] == PDF.name and by_id[("zen", "hybrid")]["mrr"] == 1.0
    assert by_id[("descale", "hybrid")]["top"][0] == "kettle-care.txt" and by_id[("descale", "hybrid")]["delivered"]
    assert not by_id[("absent", "hybrid")]["answered"]
    for line in ("floor nDCG@10 (hybrid): 1.000 >= 0.8: ok", "floor recall@k (hybrid): 1.000 >= 0.8: ok"):
        assert line in done.stdout
    # the evaluation's questions are not recorded as knowledge gaps
    assert json.loads(cli("gaps", "--workspace", "support", "--json", "--data-dir", str(data)).stdout) == []


def test_wrong_expected_documents_score_low_and_fail_the_floor(data, tmp_path):
    names = [doc for _, _, doc in QUESTIONS]
    rotated = names[1:] + names[:1]  # every question expects another question's document
    questions = write_jsonl(tmp_path / "wrong.jsonl", [{"query": query, "expected_documents": [wrong]}
                                                       for (_, query, _), wrong in zip(QUESTIONS, rotated)])
    out = tmp_path / "eval.json"
    result = cli("eval", str(questions), "--workspace", "support", "--min-ndcg", "0.5", "--json", str(out),
                 "--data-dir", str(data))
    assert result.exit_code == 1, result.output
    report = json.loads(out.read_text())
    for mode, figures in report["modes"].items():
        assert figures["ndcg"] < 0.5 and figures["mrr"] < 0.5, (mode, figures)
        assert figures["delivered"] < 0.5
    assert not report["passed"]
    assert re.search(r"floor nDCG@10 \(hybrid\): 0\.\d{3} below 0\.5: FAILED", result.stdout)


def test_an_impossible_floor_exits_1_naming_it(data, tmp_path):
    questions = write_jsonl(tmp_path / "good.jsonl", good_questions())
    result = cli("eval", str(questions), "--workspace", "support", "--mode", "dense", "--max-distance", "0.05",
                 "--min-answered", "0.5", "--min-ndcg", "0.5", "--data-dir", str(data))
    assert result.exit_code == 1, result.output
    assert "floor answered (dense): 0.000 below 0.5: FAILED" in result.stdout
    assert "floor nDCG@10 (dense): 1.000 >= 0.5: ok" in result.stdout
    assert "at max_vector_distance 0.05" in result.stdout


def test_malformed_file_unknown_workspace_and_nothing_indexed_exit_2(data, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "how do I descale", "expected_documents": ["kettle-care.txt"]}\n\n'
                   '{"query": "why do satellites stay up", "expected_documents": "satellites.txt"}\n')
    done = kb_eval(data, str(bad), "--workspace", "support")
    assert done.returncode == 2
    assert "line 3" in done.stderr and "expected_documents must be a list" in done.stderr
    bad.write_text('{"query": "fine", "expected_documents": ["x"]}\n{"query": "oops",\n')
    result = cli("eval", str(bad), "--workspace", "support", "--data-dir", str(data))
    assert result.exit_code == 2 and "line 2: not JSON" in result.stderr

    good = write_jsonl(tmp_path / "good.jsonl", good_questions())
    done = kb_eval(data, str(good), "--workspace", "nosuch")
    assert done.returncode == 2 and "no workspace with id or name 'nosuch'" in done.stderr
    assert cli("eval", str(tmp_path / "missing.jsonl"), "--workspace", "support", "--data-dir", str(data)).exit_code == 2
    assert cli("workspace", "create", "empty", "--data-dir", str(data)).exit_code == 0
    result = cli("eval", str(good), "--workspace", "empty", "--data-dir", str(data))
    assert result.exit_code == 2 and "no indexed documents" in result.stderr


def test_expected_documents_missing_from_the_workspace_are_warned_about(data, tmp_path):
    questions = write_jsonl(tmp_path / "typo.jsonl", [
        {"id": "kettle", "query": "how do I get rid of limescale in my kettle", "expected_documents": ["kettle.txt"]},
        {"id": "volcano", "query": "when did the volcano last erupt", "expected_documents": ["volcano.txt"]},
    ])
    result = cli("eval", str(questions), "--workspace", "support", "--data-dir", str(data))
    assert result.exit_code == 0
    assert "expected document 'kettle.txt' (question kettle) is not in workspace 'support'" in result.stderr
    assert "volcano.txt" not in result.stderr


def test_a_passage_is_found_when_a_chunk_contains_it_or_holds_half_of_it():
    chunk = "the starter is ready when it doubles in size. hooch is the grey liquid on top of a hungry starter"
    assert passage_in("hooch is the grey liquid", chunk)
    # split by a chunk boundary: the chunk holds the passage's first half (40 characters or more)
    assert passage_in("hooch is the grey liquid on top of a hungry starter; pour it off and feed it", chunk)
    assert not passage_in("hooch is the grey liquid on top of a hungry starter; pour it off and feed it twice a day "
                          "with equal weights of flour and water", chunk)  # less than half of it
    assert not passage_in("the starter is ready when it smells sour", chunk)  # short: must be contained


def test_the_readme_example_file_parses():
    from kb.evaluation import parse_questions

    section = (REPO / "README.md").read_text().split("## Evaluating retrieval (`kb eval`)", 1)[1]
    example = re.search(r"```json\n(.*?)```", section, re.S).group(1)
    questions = parse_questions(example, "README.md")
    assert [q.id for q in questions] == ["refund-1", "descale", "zen", "absent-1"]
    assert [q.answerable for q in questions] == [True, True, True, False]
