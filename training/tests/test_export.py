"""ONNX export: one graph, opset 17, single LayerNormalization ops, dense MoE, no custom ops,
dynamic batch, and onnxruntime == PyTorch within 1e-4."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from moead_edge.export.graph_passes import gemms_as_convs, split_experts
from moead_edge.export.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx, run_onnx
from moead_edge.model import MoEAD, distance_map, load_config


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[MoEAD, Path]:
    torch.manual_seed(0)
    model = MoEAD(load_config("tiny")).eval()
    model.channel_weights = torch.rand(model.feature_channels) + 0.1  # what training computes for tiny's distance
    return model, export_onnx(model, tmp_path_factory.mktemp("export") / "tiny.onnx")


def test_graph_contract(exported) -> None:
    model, path = exported
    g = onnx.load(str(path))
    assert g.opset_import[0].version == 17
    ops = [n.op_type for n in g.graph.node]
    assert ops.count("LayerNormalization") == 4 * model.cfg.rounds
    assert "ReduceMean" not in ops  # LayerNorm is not decomposed into mean/variance ops
    assert "TopK" in ops and "OneHot" in ops and "Softmax" in ops
    assert "BatchNormalization" not in ops  # folded into the convolutions
    assert {n.domain for n in g.graph.node} <= {"", "ai.onnx"}
    inp, out = g.graph.input[0], g.graph.output[0]
    assert inp.name == INPUT_NAME and out.name == OUTPUT_NAME
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 128, 128]
    # graph_passes: Keras' explicit zero pads live in the stride-2 convs; token projections
    # are Gemm with their bias, not MatMul + Add.
    assert "Pad" not in ops
    strided = [n for n in g.graph.node if n.op_type == "Conv"
               and list(next(a.ints for a in n.attribute if a.name == "strides")) == [2, 2]]
    assert strided and all(list(next(a.ints for a in n.attribute if a.name == "pads")) == [0, 0, 1, 1] for n in strided)
    weights = {i.name: len(i.dims) for i in g.graph.initializer}
    constants = set(weights) | {o for n in g.graph.node if n.op_type == "Constant" for o in n.output}
    consumers = {i: n for n in g.graph.node for i in n.input}
    matmul_plus_bias = [n.name for n in g.graph.node if n.op_type == "MatMul" and weights.get(n.input[1]) == 2
                        and consumers[n.output[0]].op_type == "Add"
                        and any(weights.get(i) == 1 for i in consumers[n.output[0]].input)]
    assert not matmul_plus_bias
    # Every projection is a Gemm on a stored weight: input/output projections, MHA_a's four,
    # MHA_b's four per round, and per round two routers and two expert_in layers.
    assert ops.count("Gemm") == 6 + 8 * model.cfg.rounds
    # Nothing is computed from parameters alone (the attention's score scale is folded into the
    # query weights at export), so the quantizer sees every weight as an initializer.
    from_constants = [n.name for n in g.graph.node if n.op_type not in ("Constant", "ConstantOfShape")
                      and n.input and all(i in constants for i in n.input if i)]
    assert not from_constants, from_constants
    # The recursion shares weights: each expert matrix is stored once, not once per round.
    shapes = [tuple(i.dims) for i in g.graph.initializer]
    assert shapes.count((64, 4 * 128)) == 2  # expert_in of the two MoE layers (transposed for MatMul)
    # fold_shapes: the exporter's per-run shape arithmetic is gone; every Reshape has a
    # constant target (-1 on the batch axis), and nothing computes shapes but the few
    # batch-sized expansions of the embeddings at the start.
    computed_targets = [n.name for n in g.graph.node if n.op_type == "Reshape" and n.input[1] not in constants]
    assert len(computed_targets) <= 1, computed_targets
    assert ops.count("Shape") <= 3 and "Cast" not in ops and "Mod" not in ops


def test_onnxruntime_matches_pytorch(exported) -> None:
    model, path = exported
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 128, 128)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = run_onnx(path, x)
    assert got.shape == (3, 1, 8, 8)
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))


@pytest.mark.parametrize("distance", ["relative_l2", "whitened_relative_l2"])
def test_relative_distances_export_with_parity(distance: str, tmp_path) -> None:
    torch.manual_seed(1)
    cfg = dataclasses.replace(load_config("tiny"), distance=distance)
    model = MoEAD(cfg).eval()
    if distance == "whitened_relative_l2":
        model.channel_weights = torch.rand(model.feature_channels) + 0.1
    path = export_onnx(model, tmp_path / f"{distance}.onnx")
    x = np.random.default_rng(1).uniform(0, 1, (2, 3, 128, 128)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
        plain = distance_map(*_features_and_reconstruction(model, x)).numpy()
    got = run_onnx(path, x)
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))
    assert not np.allclose(got, plain)  # the graph really divides by the feature norm


def _features_and_reconstruction(model: MoEAD, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    feats = model.features(torch.from_numpy(x))
    rec, _ = model.reconstruction(feats)
    return feats, rec


def test_split_experts_keeps_the_map_and_shares_weights(exported, tmp_path) -> None:
    """The INT8-only rewrite: one MatMul per expert, gates on the outputs, same numbers, and the
    rounds still share each weight (per-expert blocks stored once per MoE layer)."""
    model, path = exported
    g, hidden_splits = split_experts(onnx.load(str(path)))
    cfg = model.cfg
    assert len(hidden_splits) == 2 * cfg.rounds
    ops = [n.op_type for n in g.graph.node]
    assert ops.count("MatMul") - [n.op_type for n in onnx.load(str(path)).graph.node].count("MatMul") \
        == (cfg.experts - 1) * 2 * cfg.rounds
    blocks = [i for i in g.graph.initializer if "/expert" in i.name and len(i.dims) == 2]
    assert len(blocks) == cfg.experts * 2
    onnx.save(g, str(tmp_path / "split.onnx"))
    x = np.random.default_rng(2).uniform(-1, 1, (2, 3, 128, 128)).astype(np.float32)
    before, after = run_onnx(path, x), run_onnx(tmp_path / "split.onnx", x)
    assert np.abs(after - before).max() <= 1e-5 * max(1.0, float(np.abs(before).max()))


def test_gemms_as_convs_keeps_the_map_and_shares_kernels(exported, tmp_path) -> None:
    """The INT8-only rewrite of Gemms into 1x1 convolutions: same numbers in float, each shared
    Gemm weight becomes one shared kernel, and the ReLU after expert_in moves inside."""
    model, path = exported
    original = onnx.load(str(path))
    gemms = [n for n in original.graph.node if n.op_type == "Gemm" and "/router" not in n.name]
    g, layout = gemms_as_convs(onnx.load(str(path)), {n.name for n in gemms})
    ops = [n.op_type for n in g.graph.node]
    assert ops.count("Gemm") == len([n for n in original.graph.node if n.op_type == "Gemm"]) - len(gemms)
    assert ops.count("Conv") - [n.op_type for n in original.graph.node].count("Conv") == len(gemms)
    assert len(layout) == 4 * len(gemms)  # Reshape, Transpose in; Transpose, Reshape out
    kernels = [i for i in g.graph.initializer if i.name.endswith("/conv1x1")]
    assert len(kernels) == len({n.input[1] for n in gemms}) < len(gemms)  # rounds share weights
    followed_by_relu = {n.input[0] for n in original.graph.node if n.op_type == "Relu"} & {n.output[0] for n in gemms}
    producers = {o: n for n in g.graph.node for o in n.output}
    relus = [n for n in g.graph.node if n.op_type == "Relu" and n.input[0].endswith("/conv")
             and producers[n.input[0]].op_type == "Conv"]
    assert followed_by_relu and len(relus) == len(followed_by_relu)
    onnx.save(g, str(tmp_path / "convs.onnx"))
    x = np.random.default_rng(3).uniform(-1, 1, (2, 3, 128, 128)).astype(np.float32)
    before, after = run_onnx(path, x), run_onnx(tmp_path / "convs.onnx", x)
    assert np.abs(after - before).max() <= 1e-5 * max(1.0, float(np.abs(before).max()))


class _MoEOnly(torch.nn.Module):
    def __init__(self, moe: torch.nn.Module) -> None:
        super().__init__()
        self.moe = moe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moe(x)[0]


@pytest.mark.parametrize("bias", [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 1.0, 1.0], [1.0] * 4])
# The TorchScript exporter, as export_onnx uses it (which silences the same notices).
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tied_router_logits_pick_the_same_experts_as_onnx(bias: list[float], tmp_path) -> None:
    """A zero router row leaves the biases as every token's logits: ties. ONNX TopK gives a tie
    to the lower index; PyTorch must route the same way, in the dense and the sparse form."""
    from moead_edge.model.moe import MoEFFN

    torch.manual_seed(0)
    moe = MoEFFN(dim=8, hidden=16, experts=4, top_k=2, dropout=0.0).eval()
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.bias.copy_(torch.tensor(bias))
    x = torch.randn(1, 5, 8)
    path = tmp_path / "moe.onnx"
    torch.onnx.export(_MoEOnly(moe), (x,), str(path), opset_version=17, dynamo=False,
                      input_names=["x"], output_names=["y"])
    import onnxruntime as ort

    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["y"], {"x": x.numpy()})[0]
    with torch.no_grad():
        dense = moe(x)[0]
        sparse = moe.sparse_forward(x)
        chosen = (moe.gates(x)[1][0, 0] > 0).nonzero().flatten().tolist()
    lower_first = sorted(range(4), key=lambda e: (-bias[e], e))[:2]
    assert sorted(chosen) == sorted(lower_first)
    np.testing.assert_allclose(got, dense.numpy(), atol=1e-6)
    assert torch.allclose(dense, sparse, atol=1e-6)
