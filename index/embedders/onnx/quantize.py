"""Dynamic int8 quantisation of the fp32 export with `onnxruntime.quantization.quantize_dynamic`."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from .export import ExportJob

log = logging.getLogger(__name__)

_GELU_OPS = {"Gelu", "BiasGelu", "FastGelu", "QuickGelu"}


def quantize(job: ExportJob, fp32: bytes, path: Path, *, keep_ffn_down: bool) -> bytes:
    """Dynamic int8 quantisation of the fp32 export: weights int8 per channel, activations per run.

    With `keep_ffn_down` (the query model) the FFN down-projections (the MatMul right after
    each GELU) stay in fp32: their inputs have the outlier features of BERT-like models, and
    per-tensor int8 activations there cost up to 3% cosine on short or non-English texts. They
    are also 40% of the int8 model's time, so the document model quantises them too.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    reference = job.probe(fp32)
    keep_fp32 = ffn_down_projections(onnx.load_model_from_string(fp32)) if keep_ffn_down else []
    with job.cache.temp_path(path.name) as tmp, _quiet_quantizer():
        quantize_dynamic(
            job.cache.fp32_path,
            tmp,
            weight_type=QuantType.QInt8,
            per_channel=True,  # per-tensor weights cost MiniLM ~4% cosine; per-channel under 1%
            nodes_to_exclude=keep_fp32,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # for fused contrib ops
        )
        job.check(tmp.read_bytes(), reference, 0.97, "the int8 model")
        data = job.cache.publish(tmp, path, job.fingerprint, variant="int8", kept_fp32=keep_fp32,
                                 seconds=round(time.perf_counter() - started, 2))
    log.info("quantised %s to %s (%d MB, %d MatMuls kept in fp32)", job.name, path, len(data) >> 20, len(keep_fp32))
    return data


def ffn_down_projections(model) -> list[str]:
    """Names of the MatMul nodes fed by a GELU: fused (Gelu, BiasGelu...) or spelled out (erf/tanh ... Mul)."""
    producer = {out: node for node in model.graph.node for out in node.output}

    def gelu_output(node, depth: int = 0) -> bool:
        if node is None or depth > 3:
            return False
        if node.op_type in _GELU_OPS:
            return True
        if node.op_type in ("Erf", "Tanh"):
            return depth > 0
        if node.op_type in ("Mul", "Add", "Div"):
            return any(gelu_output(producer.get(i), depth + 1) for i in node.input)
        return False

    return [n.name for n in model.graph.node if n.op_type == "MatMul" and gelu_output(producer.get(n.input[0]))]


class _DropToolChatter(logging.Filter):
    """onnxruntime's quantiser logs dozens of INFO lines through the root logger: keep only errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    chatter = _DropToolChatter()
    root = logging.getLogger()
    root.addFilter(chatter)
    try:
        yield
    finally:
        root.removeFilter(chatter)
