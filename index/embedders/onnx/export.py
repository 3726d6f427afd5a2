"""Exporting the transformer to ONNX with `torch.onnx.export`, checked against sentence-transformers,
and fused by onnxruntime's transformer optimizer where that is exact."""

from __future__ import annotations

import inspect
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base import ModelUnavailable
from .cache import ExportCache
from .model_dir import ModelFolder
from .runtime import run, session
from .tokenizer import ModelTokenizer

log = logging.getLogger(__name__)

OPSET = 17
_MAX_SINGLE_FILE_BYTES = 1_900_000_000  # protobuf's limit is 2 GiB; larger exports need external data files
# model_type values for which onnxruntime's BERT fusions (Attention, SkipLayerNorm, BiasGelu...) apply
_FUSABLE_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "camembert", "electra", "mpnet"}
PROBE_TEXTS = [
    "a",
    "What is the capital of France?",
    "Our shop in Lyon is open Monday to Friday from 9am to 6pm, and on Saturday mornings until noon.",
    "Der schnelle braune Fuchs springt über den faulen Hund. 東京は日本の首都です。",
    " ".join(["The quick brown fox jumps over the lazy dog."] * 30),  # past max_tokens: truncated
]


@dataclass(frozen=True)
class ExportJob:
    """One model's way into its cache: what the export, the fusion, the quantisation and their checks use."""

    name: str
    folder: ModelFolder
    tokenizer: ModelTokenizer
    cache: ExportCache
    fingerprint: dict
    fuse: bool

    def probe(self, data: bytes) -> np.ndarray:
        """Vectors of `PROBE_TEXTS` computed by the ONNX model `data`."""
        return run(session(data, 1), self.tokenizer, self.tokenizer.encode_batch(PROBE_TEXTS), self.folder.pooling_modes)

    def check(self, data: bytes, reference: np.ndarray, min_cosine: float, what: str) -> None:
        """Raise `ModelUnavailable` unless the model `data` reproduces `reference` to `min_cosine`."""
        cosines = (self.probe(data) * reference).sum(axis=1)
        if not np.all(cosines >= min_cosine):
            raise ModelUnavailable(
                f"{what} of {self.name!r} does not reproduce the reference embeddings "
                f"(cosine {cosines.min():.5f} < {min_cosine})"
            )


def export_fp32(job: ExportJob) -> bytes:
    """Export the transformer with torch.onnx.export; check it against torch; fuse if that is exact."""
    import torch
    from sentence_transformers import SentenceTransformer

    log.info("exporting %s to ONNX in %s (once; takes a few seconds)", job.name, job.cache.directory)
    started = time.perf_counter()
    root = str(job.folder.root)
    try:
        # eager attention: a plain traceable graph, which onnxruntime's fusions recognise
        model = SentenceTransformer(root, device="cpu", model_kwargs={"attn_implementation": "eager"})
    except Exception:
        model = SentenceTransformer(root, device="cpu")
    model.eval()
    transformer = model[0].auto_model
    weight_bytes = sum(p.numel() * p.element_size() for p in transformer.parameters())
    if weight_bytes > _MAX_SINGLE_FILE_BYTES:
        raise ModelUnavailable(
            f"{job.name!r} has {weight_bytes / 1e9:.1f} GB of weights: too large for a single-file ONNX "
            "model (protobuf's 2 GB limit); use the torch backend"
        )
    torch_max = int(model.max_seq_length)
    if torch_max != job.tokenizer.max_tokens:
        raise ModelUnavailable(f"max_tokens mismatch: sentence-transformers says {torch_max}, the tokenizer {job.tokenizer.max_tokens}")
    forward_params = set(inspect.signature(transformer.forward).parameters)
    input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in forward_params]
    if "token_type_ids" in input_names and "token_type_ids" not in job.tokenizer.hf.model_input_names:
        input_names.remove("token_type_ids")

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            return self.inner(**dict(zip(input_names, inputs))).last_hidden_state

    # The dummy batch must contain padding, so the traced graph keeps the attention mask path.
    dummy = job.tokenizer.feed(job.tokenizer.encode_batch(["hello world", "a longer sentence, so the first one is padded"]), input_names)
    with job.cache.temp_path("model.onnx") as tmp, torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python-level branches in transformers' mask code; they depend on
        # shapes that are equal for every encoder input, and the check below runs several shapes.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TokenEmbeddings(transformer).eval(),
            tuple(torch.from_numpy(dummy[n]) for n in input_names),
            str(tmp),
            input_names=input_names,
            output_names=["token_embeddings"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*input_names, "token_embeddings"]},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        # The reference: sentence-transformers itself, on probe texts of several lengths
        reference = model.encode(
            PROBE_TEXTS, prompt="", batch_size=len(PROBE_TEXTS), normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        job.check(tmp.read_bytes(), reference, 0.9999, "the exported model")
        fused = False
        if job.fuse and job.folder.hf_config.get("model_type") in _FUSABLE_MODEL_TYPES:
            fused = _try_fuse(job, tmp, reference)
        export_seconds = time.perf_counter() - started
        data = job.cache.publish(tmp, job.cache.fp32_path, job.fingerprint, variant="fp32", fused=fused,
                                 inputs=input_names, seconds=round(export_seconds, 2))
    log.info("exported %s to %s in %.1fs (%d MB, fused=%s)", job.name, job.cache.fp32_path, export_seconds, len(data) >> 20, fused)
    return data


def _try_fuse(job: ExportJob, tmp: Path, reference: np.ndarray) -> bool:
    try:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        heads = int(job.folder.hf_config["num_attention_heads"])
        hidden = int(job.folder.hf_config["hidden_size"])
        _quiet_optimizer_loggers()
        options = FusionOptions("bert")
        options.enable_skip_layer_norm = False  # see runtime.UNFUSED
        optimized = optimize_model(str(tmp), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0,
                                   use_gpu=False, optimization_options=options)
        with job.cache.temp_path("model.fused.onnx") as fused_tmp:
            optimized.save_model_to_file(str(fused_tmp))
            job.check(fused_tmp.read_bytes(), reference, 0.9999, "the fused model")
            os.replace(fused_tmp, tmp)
        return True
    except Exception as exc:  # fusion is an optimisation only: keep the plain export
        log.warning("onnxruntime fusion of %s skipped: %s", job.name, exc)
        return False


def _quiet_optimizer_loggers() -> None:
    """The transformer optimizer's modules log under their bare module names (fusion_*, onnx_model*)."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("fusion_", "onnx_model", "optimizer")):
            logging.getLogger(name).setLevel(logging.WARNING)
