"""INT8 Q/DQ: the quantized Conv/MatMul really run as integer kernels in onnxruntime, and the
float-only parts (router, softmax, LayerNorm, residual adds) stay float."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from moead_edge.export.onnx_export import export_onnx, run_onnx
from moead_edge.model import MoEAD, load_config
from moead_edge.quantize.int8 import FLOAT_LEADING_CONVS, fusion_report, quantize_int8


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path, Path, dict]:
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("quant")
    model = MoEAD(load_config("tiny")).eval()
    model.channel_weights = torch.rand(model.feature_channels) + 0.1  # what training computes for tiny's distance
    fp32 = export_onnx(model, d / "fp32.onnx")
    rng = np.random.default_rng(0)
    calib = [rng.uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32) for _ in range(4)]
    int8 = quantize_int8(fp32, d / "int8.onnx", calib, "u8")
    return fp32, int8, d, fusion_report(int8, d / "int8.optimized.onnx")


def test_quantized_conv_and_matmul_fuse_to_integer_kernels(models) -> None:
    r = models[3]
    ops = r["ops"]
    assert r["quantized_nodes"] >= 30  # 18 backbone convs + projections + experts
    integer = ("QLinearConv", "QLinearMatMul", "QGemm", "MatMulIntegerToFloat")
    assert sum(ops.get(k, 0) for k in integer) >= r["quantized_nodes"]
    # The projections and expert_in layers run as 1x1 QLinearConv (gemms_as_convs), whose kernel
    # requantizes its output; no QGemm is left.
    cfg = load_config("tiny")
    rounds = cfg.rounds
    attentions = 1 + rounds  # MHA_a once (same in every round), MHA_b per round
    assert ops.get("QGemm", 0) == 0
    # Every quantized weight product, plus each attention's two activation products.
    assert ops["QLinearConv"] + ops["MatMulIntegerToFloat"] + ops["QLinearMatMul"] == r["quantized_nodes"] + 2 * attentions
    # Integer products with a float output: each expert's second product (split_experts), which
    # the gates scale, and each attention's scores, which the mask and the softmax read. The
    # probabilities x V product ends quantized, for the output projection.
    assert ops.get("MatMulIntegerToFloat", 0) == cfg.experts * 2 * rounds + attentions
    assert ops.get("QLinearMatMul", 0) == attentions
    # What is left as float Conv/MatMul is what was meant to stay float: the leading convs,
    # the routers and the gate x bias products.
    assert ops.get("Conv", 0) + ops.get("FusedConv", 0) == FLOAT_LEADING_CONVS
    assert r["float_conv_matmul"] == FLOAT_LEADING_CONVS + 2 * 2 * rounds


def test_gates_never_requantize_the_hidden_layer(models) -> None:
    """The gates scale the experts' float outputs. In the graph onnxruntime runs, no
    QuantizeLinear reads a gate product or a piece of the hidden layer, and the per-expert
    Split takes the 8-bit output of the expert_in convolution (through the Reshape back to
    token rows)."""
    g = onnx.load(str(models[2] / "int8.optimized.onnx"))
    producers = {o: n for n in g.graph.node for o in n.output}
    requantized = [producers[n.input[0]] for n in g.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in producers]
    assert not [p.name for p in requantized if p.op_type in ("Mul", "Split")]
    splits = [n for n in g.graph.node if n.op_type == "Split" and n.name.endswith("/split/hidden")]
    rows = [producers[n.input[0]] for n in splits]
    assert splits and all(r.op_type == "Reshape" and producers[r.input[0]].op_type == "QLinearConv" for r in rows)


def test_gemm_convs_run_channels_last_without_transposes(models) -> None:
    """gemms_as_convs only pays if onnxruntime's layout pass cancels the Transposes the rewrite
    writes around each Conv against its own: every rewritten projection must run as an NHWC
    QLinearConv with no Transpose on either side."""
    g = onnx.load(str(models[2] / "int8.optimized.onnx"))
    producers = {o: n for n in g.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    convs = [n for n in g.graph.node if n.op_type == "QLinearConv" and "/reconstruction/" in n.name]
    assert len(convs) >= 4 * (1 + load_config("tiny").rounds)  # q, k, v and output projections at least
    for conv in convs:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
        assert conv.domain == "com.microsoft" and attrs.get("channels_last") == 1, conv.name
        # A Reshape of the 8-bit rows, or the QuantizeLinear after a Reshape of the float ones.
        assert producers[conv.input[0]].op_type in ("Reshape", "QuantizeLinear"), conv.name
        assert all(c.op_type == "Reshape" for c in consumers[conv.output[0]]), conv.name


def test_activations_fold_into_quantized_producers(models) -> None:
    """A ReLU/ReLU6 after a quantized node is folded into its output range: the only ones left
    follow the float leading convs. A float activation between DequantizeLinear and
    QuantizeLinear cost time and (for ReLU6) quantized the raw, unclipped range."""
    g = onnx.load(str(models[1]))
    producers = {o: n.op_type for n in g.graph.node for o in n.output}
    # Activations of a conv or projection (the distance head's norm floor is a Clip too, after a Sqrt).
    activations = [n for n in g.graph.node if n.op_type in ("Relu", "Clip")
                   and producers.get(n.input[0]) in ("Conv", "Gemm", "MatMul", "DequantizeLinear")]
    assert len(activations) == FLOAT_LEADING_CONVS, [n.name for n in activations]


def test_sensitive_ops_stay_float(models) -> None:
    _, int8, d, _ = models
    g = onnx.load(str(int8))
    producers = {o: n for n in g.graph.node for o in n.output}
    weights = {i.name for i in g.graph.initializer}
    for n in g.graph.node:
        if n.op_type in ("LayerNormalization", "Softmax", "TopK"):
            src = producers.get(n.input[0])
            assert src is None or src.op_type != "DequantizeLinear", f"{n.name} reads a quantized tensor"
        if n.op_type in ("MatMul", "Gemm") and "/router" in n.name:
            assert n.input[1] in weights, f"{n.name}: router weights were quantized"
    per_channel = [n for n in g.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights
                   and len(g.graph.initializer[[i.name for i in g.graph.initializer].index(n.input[1])].dims) == 1]
    assert per_channel, "weights should be quantized per channel"
    # onnxruntime turns the backbone's inverted-residual Adds into QLinearAdd (a CNN residual);
    # the transformer's residual stream never sees a Q/DQ pair.
    optimized = onnx.load(str(d / "int8.optimized.onnx"))
    fused_adds = [n.name for n in optimized.graph.node if n.op_type == "QLinearAdd"]
    assert all(name.startswith("/backbone/") for name in fused_adds), fused_adds
    # The attention scores leave their integer product as float: the mask is added and the
    # softmax taken in float, never on a requantized score.
    made = {o: n for n in optimized.graph.node for o in n.output}
    softmaxes = [n for n in optimized.graph.node if n.op_type == "Softmax" and "/attn_" in n.name]
    assert softmaxes
    for sm in softmaxes:
        add = made[sm.input[0]]
        assert add.op_type == "Add" and "MatMulIntegerToFloat" in {made[i].op_type for i in add.input if i in made}, sm.name


def test_int8_close_to_fp32(models) -> None:
    fp32, int8, _, _ = models
    x = np.random.default_rng(1).uniform(-1, 1, (2, 3, 128, 128)).astype(np.float32)
    a, b = run_onnx(fp32, x), run_onnx(int8, x)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


def _weight_extremes(path: Path) -> tuple[int, int]:
    """Smallest and largest value of the int8 weights that feed a DequantizeLinear."""
    g = onnx.load(str(path)).graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}
    weights = [inits[n.input[0]] for n in g.node
               if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].dtype == np.int8]
    assert weights, f"{path}: no int8 weights"
    return min(int(w.min()) for w in weights), max(int(w.max()) for w in weights)


def test_seven_bit_weights_stay_within_64_and_still_fuse(models) -> None:
    fp32, int8, d, report = models
    rng = np.random.default_rng(0)
    calib = [rng.uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32) for _ in range(4)]
    seven = quantize_int8(fp32, d / "int8-w7.onnx", calib, "u8", weight_bits=7)
    # Where vpmaddubsw adds two uint8 x int8 products in 16 bits, 255 * 64 * 2 fits and 255 * 127 * 2 does not.
    low, high = _weight_extremes(seven)
    assert -64 <= low and high <= 64, (low, high)
    assert max(abs(v) for v in _weight_extremes(int8)) > 64, "8-bit weights use the full range"
    assert fusion_report(seven, d / "int8-w7.optimized.onnx")["integer_kernels"] == report["integer_kernels"]
    x = rng.uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)
    ref = run_onnx(fp32, x)
    assert np.corrcoef(run_onnx(seven, x).ravel(), ref.ravel())[0, 1] > 0.95
    with pytest.raises(ValueError, match="weight_bits must be 8 or 7"):
        quantize_int8(fp32, d / "bad.onnx", calib, "u8", weight_bits=6)
