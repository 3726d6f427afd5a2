"""Scoped retrieval cost, in-process: seed N documents in one folder (N/10 of them in a sub-folder) plus 500 outside and 500 in
another workspace (rows inserted directly, one chunk each, lexical terms set, fake unit embedding), then
time whole retrievals and print the server's timings_ms.filter medians:
  folder   : kb.retrieval.retrieve(folder_ids=[folder])
  folder+f : the same with a filter on a stored attribute
  agent    : kb.agents.retrieve of an agent whose knowledge base is the folder (rag on)
  agent+p  : an agent: [folder auto, one of its documents prompt, the sub-folder prompt]
Also prints a digest of the chunk ids and prompt documents returned, to compare two trees (run it from each
tree's root, alternating; no model indexing is needed, so 20,000 documents take seconds to set up):

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false .venv/bin/python bench/scoped_retrieval.py 20000 30
"""
import hashlib, statistics, sys, tempfile, time
from pathlib import Path
REPO = Path.cwd()  # the tree measured: run from its root
sys.path.insert(0, str(REPO / "tests"))
from helpers import make_kb
from sqlalchemy import insert
from kb.storage.schema import documents, chunks, rag_indexes, document_attributes
from kb.filters import parse_filter
import numpy as np

N, ROUNDS = int(sys.argv[1]), int(sys.argv[2])
kb = make_kb(Path(tempfile.mkdtemp()) / "data", workers=0)
ws, key = kb.workspaces.create("p")
other, _ = kb.workspaces.create("other")
folder = kb.folders.create(ws, "f")
sub = kb.folders.create(ws, "sub", folder.id)
model = kb.models.resolve(ws.default_model).served
dim = kb.models.get(model).dimension
now = time.time()
rng = np.random.default_rng(1)
WORDS = "pump valve gasket engine boiler turbine rotor shaft bearing seal piston cylinder".split()
def seed(w, parent, n, prefix):
    docs, idx, chs, attrs = [], [], [], []
    for i in range(n):
        d = f"{prefix}{i:06d}"
        v = rng.standard_normal(dim).astype(np.float32); v /= np.linalg.norm(v)
        terms = " ".join(rng.choice(WORDS, 5))
        docs.append(dict(id=d, workspace_id=w.id, name=f"doc {prefix}{i}", type="text", format="txt", parent_folder_id=parent,
                         size_bytes=100, char_count=100, content_hash="h", metadata_json="{}", created_at=now, updated_at=now))
        idx.append(dict(id="ix"+d, workspace_id=w.id, document_id=d, model=model, status="succeeded", created_at=now, updated_at=now, requested_names=[]))
        chs.append(dict(id="c"+d, workspace_id=w.id, document_id=d, rag_index_id="ix"+d, model=model, ordinal=0, text=terms,
                        start=0, end=len(terms), token_count=5, text_hash=d, lexical_terms=terms, embedding=v.tobytes()))
        attrs.append(dict(document_id=d, key="team", workspace_id=w.id, kind="string", value_text=["a", "b"][i % 2], automatic=False))
    with kb.db.write() as tx:
        for table, rows in ((documents, docs), (rag_indexes, idx), (chunks, chs), (document_attributes, attrs)):
            for s in range(0, len(rows), 5000):
                tx.execute(insert(table), rows[s:s + 5000])
seed(ws, folder.id, N - N // 10, "d")
seed(ws, sub.id, N // 10, "s")
seed(ws, None, 500, "r")
seed(other, None, 500, "o")
for d in ["d000003", "r000001"] + [f"s{i:06d}" for i in range(N // 10)]:
    kb.storage.blobs.put(ws.id, d, "text.txt", b"some text")
def agent(kbase):
    return kb.agents.create(ws, {"name": "a", "conversation_config": {"agent": {"prompt": {"knowledge_base": kbase,
        "rag": {"enabled": True, "max_vector_distance": 2.0}}}}})
a1 = agent([{"type": "folder", "name": "f", "id": folder.id}])
a2 = agent([{"type": "folder", "name": "f", "id": folder.id}, {"type": "text", "name": "x", "id": "d000003", "usage_mode": "prompt"},
            {"type": "folder", "name": "sub", "id": sub.id, "usage_mode": "prompt"}, {"type": "text", "name": "r", "id": "r000001", "usage_mode": "prompt"}])
aid = lambda a: a.id if hasattr(a, "id") else a["agent_id"]
flt = parse_filter({"type": "eq", "key": "team", "value": "a"})
from index.retrieval import RetrievalLimits
lim = RetrievalLimits(max_vector_distance=2.0, max_retrieved_rag_chunks_count=10)
words = iter(f"{' '.join(rng.choice(WORDS, 3))} {n}" for n in range(10**9))
cases = {
    "folder": lambda q: kb.retrieval.retrieve(ws, q, folder_ids=[folder.id], limits=lim),
    "folder+f": lambda q: kb.retrieval.retrieve(ws, q, folder_ids=[folder.id], filters=flt, limits=lim),
    "agent": lambda q: kb.agents.retrieve(ws, aid(a1), q),
    "agent+p": lambda q: kb.agents.retrieve(ws, aid(a2), q),
    "unscoped": lambda q: kb.retrieval.retrieve(ws, q, limits=lim),
}
digest = hashlib.sha256()
for name, fn in cases.items():  # results of fixed queries, to compare trees
    for q in ("pump valve", "turbine rotor shaft", "seal"):
        res = fn(q)
        chunks_ = res.chunks
        digest.update(repr([(c.chunk_id, round(c.vector_distance, 4)) for c in chunks_]).encode())
        if hasattr(res, "prompt_documents"):
            digest.update(repr(res.prompt_documents).encode())
print(f"N={N} results digest {digest.hexdigest()[:16]}")
# server-side filter stage: kb.retrieval timings; agent: wall time of kb.agents.retrieve
filt = {n: [] for n in cases}; wall = {n: [] for n in cases}
import random
order = list(cases)
for r in range(ROUNDS):
    random.Random(r).shuffle(order)
    for name in order:
        t = time.perf_counter(); res = cases[name](next(words)); wall[name].append((time.perf_counter() - t) * 1000)
        inner = res if hasattr(res, "timings_ms") else None
        if inner is not None:
            filt[name].append(inner.timings_ms.get("filter", 0.0))
for name in cases:
    f = f"{statistics.median(filt[name]):7.2f}" if filt[name] else "      -"
    print(f"N={N} {name:9s} filter p50 {f} ms   call p50 {statistics.median(wall[name]):7.2f} ms")
kb.close()
