"""Static INT8 quantization to Q/DQ (what TensorRT consumes and onnxruntime fuses).

Quantized: every Conv but the first two, every Gemm/MatMul whose second input is a weight
(projections and the expert matrix products), the attention score and value products, and
the ReLU/ReLU6 right after a quantized node, which the quantizer folds into that node's
output range. Before quantizing, `split_experts` gives each expert its own second matrix
product (see graph_passes); those keep a float output, which the gates weight and sum, and so
do the attention scores, which the mask and the softmax read; then `gemms_as_convs` writes the
quantized Gemms (projections, experts' first layer) as 1x1 convolutions, which onnxruntime
runs with the requantization inside its kernel. Kept float: the router and the
gate-weighted bias MatMul, TopK/Softmax, LayerNormalization, residual Adds, the neck's Resize
and the distance head. Weights: per-channel symmetric int8.
Activations: the format is chosen by `activations`:
  - "u8": asymmetric uint8 (U8S8). onnxruntime on x86 fuses these into QLinearConv /
    QLinearMatMul (perf.md §4a saw signed activations with two consumers stay unfused).
  - "s8": symmetric int8 with zero point 0, one dedicated Q/DQ pair per consumer, which is
    TensorRT's explicit-quantization form.
"""
from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx

from ..export.graph_passes import gemms_as_convs, prune, split_experts
from ..export.onnx_export import INPUT_NAME

# Op types onnxruntime runs as integer kernels after fusing Q/DQ pairs.
INTEGER_KERNELS = ("QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "MatMulIntegerToFloat",
                   "DynamicQuantizeMatMul", "QGemm", "QLinearAdd", "QLinearMul", "FusedConv")


# The first convolutions stay float. MobileNetV2's first depthwise conv has channels whose
# folded BatchNorm scale is ~30x the others (near-zero running variance). While its ReLU6 ran
# in float, its output was quantized over that raw range, which wiped out the other channels
# (map correlation with FP32 ~0). With the ReLU6 folded into the output range, quantizing the
# first one or two convs costs less (correlation 0.981 / 0.979 against 0.996 with both float,
# shipped checkpoint) but saves no time measurably: the stem has 3 input channels.
FLOAT_LEADING_CONVS = 2


def quantizable_nodes(model: onnx.ModelProto) -> list[str]:
    """Conv and weight MatMul/Gemm nodes, except the leading convs and the router path (which
    decides the top-2 routing); the MatMuls of two activations (the attention products); plus
    the ReLU/ReLU6 right after one of them: listing those lets the quantizer fold them into the
    producer's output range instead of leaving a float activation between a DequantizeLinear
    and a QuantizeLinear."""
    weights = {i.name for i in model.graph.initializer}
    names = []
    produced_by = {}
    convs = 0
    for n in model.graph.node:
        if n.op_type == "Conv":
            convs += 1
            if convs > FLOAT_LEADING_CONVS:
                names.append(n.name)
        elif n.op_type in ("MatMul", "Gemm") and n.input[1] in weights:
            if "/router" in n.name or n.input[1].endswith("expert_out_bias"):
                continue
            names.append(n.name)
        elif n.op_type == "MatMul" and n.input[0] not in weights:
            # An attention product (scores Q·Kᵀ, or probabilities × V): both sides are
            # activations. Scores keep a float output for the mask and the softmax.
            names.append(n.name)
        elif n.op_type in ("Relu", "Clip") and produced_by.get(n.input[0]) in names:
            names.append(n.name)
        for out in n.output:
            produced_by[out] = n.name
    return names


class _Reader:
    """onnxruntime CalibrationDataReader over batches of normalized images."""

    def __init__(self, batches: Iterable[np.ndarray]):
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self):
        batch = next(self._it, None)
        return None if batch is None else {INPUT_NAME: batch.astype(np.float32)}


def quantize_int8(fp32_path: Path, int8_path: Path, calibration: Iterable[np.ndarray], activations: str = "u8",
                  weight_bits: int = 8) -> Path:
    """`weight_bits` 7 keeps the int8 weights within +-64 (onnxruntime's reduce_range): on x86 without
    VNNI, MLAS adds pairs of uint8 x int8 products in saturating 16-bit sums (vpmaddubsw), which
    255 x 127 x 2 overflows and 255 x 64 x 2 does not. Measured on the shipped bundle's FP32 export
    under QEMU's Haswell CPU: with 8-bit weights its test-image scores moved by up to 16 % from this
    project's VNNI host's (10 of 450 decisions), with 7-bit weights by 0.18 % at most (none); the
    7-bit model's image AUROC was 0.0053 lower (docs/inference.md)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if activations not in ("u8", "s8"):
        raise ValueError(f"activations must be 'u8' or 's8', got {activations!r}")
    if weight_bits not in (8, 7):
        raise ValueError(f"weight_bits must be 8 or 7, got {weight_bits!r}")
    import logging

    # The quantizer logs a generic "consider pre-processing" hint on every run; BatchNorm is
    # already folded and shapes are static, so it adds nothing.
    logging.getLogger().setLevel(logging.ERROR)
    # 0.3-0.4 ms of a 9 ms INT8 run on the shipped model; 2 % slower in FP32, hence here only.
    model, hidden_splits = split_experts(onnx.load(str(fp32_path)))
    # The quantized Gemms as 1x1 convolutions: 3.95 -> 3.56 ms on the shipped model (this host,
    # AVX-512 VNNI); in FP32 the conv form is 12 % slower, hence here only (graph_passes).
    model, layout_nodes = gemms_as_convs(model, set(quantizable_nodes(model)))
    # Quantized MatMuls keep a float output: the per-expert products, which the gates scale, and
    # the attention scores, which the mask and softmax read (onnxruntime runs both as
    # MatMulIntegerToFloat). The probabilities × V product still ends quantized (QLinearMatMul),
    # since the output projection reads it. Projections are Gemm (linear_to_gemm).
    extra = {"WeightSymmetric": True, "MatMulConstBOnly": False, "OpTypesToExcludeOutputQuantization": ["MatMul"]}
    if activations == "s8":
        extra |= {"ActivationSymmetric": True, "DedicatedQDQPair": True}
    quantize_static(
        model, str(int8_path), _Reader(calibration), quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv", "MatMul", "Gemm", "Relu", "Clip", "Split", "Reshape", "Transpose"],
        nodes_to_quantize=quantizable_nodes(model) + hidden_splits + layout_nodes,
        per_channel=True, reduce_range=weight_bits == 7,
        activation_type=QuantType.QUInt8 if activations == "u8" else QuantType.QInt8,
        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, extra_options=extra)
    # The ReLU6s the quantizer folded leave their min/max Constant nodes behind; onnxruntime
    # would warn about each one every time a daemon loads the bundle.
    onnx.save(prune(onnx.load(str(int8_path))), str(int8_path))
    return int8_path


def optimized_op_counts(model_path: Path, optimized_path: Path) -> collections.Counter:
    """Op types in the graph onnxruntime actually runs (full CPU optimization, dumped to disk)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(optimized_path)
    opts.log_severity_level = 3  # the dump is for counting kernels here, not for reuse elsewhere
    ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(optimized_path))
    return collections.Counter(n.op_type for n in graph.graph.node)


def fusion_report(int8_path: Path, optimized_path: Path) -> dict:
    """How many Conv/MatMul/Gemm ran as integer kernels, and how many stayed float next to Q/DQ."""
    graph = onnx.load(str(int8_path))
    weights = {i.name for i in graph.graph.initializer}
    dq_of_weight = {n.output[0] for n in graph.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights}
    quantized = [n.name for n in graph.graph.node if n.op_type in ("Conv", "MatMul", "Gemm") and n.input[1] in dq_of_weight]
    counts = optimized_op_counts(int8_path, optimized_path)
    fused = sum(counts[k] for k in INTEGER_KERNELS if k != "FusedConv")
    return {"quantized_nodes": len(quantized), "integer_kernels": fused,
            "float_conv_matmul": counts["Conv"] + counts["FusedConv"] + counts["MatMul"] + counts["FusedMatMul"]
            + counts["Gemm"] + counts["FusedGemm"],
            "ops": dict(counts)}
