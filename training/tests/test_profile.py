"""`profile`: onnxruntime's kernel times of a bundle's two graphs, broken down by op type, part
and region. Run through the CLI on a tiny exported and quantized model, whose node names
come from the same export and graph passes as the shipped bundle's."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from moead_edge.backbones import build_backbone
from moead_edge.cli import main
from moead_edge.eval.profile import PARTS, ProfileError, _measured
from moead_edge.export.onnx_export import export_onnx
from moead_edge.model import MoEAD, load_config
from moead_edge.quantize.int8 import quantize_int8

TRAINING = Path(__file__).resolve().parents[1]
RUNS = ("--runs", "5", "--warmup", "2")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "moead_edge", *args], cwd=TRAINING, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """model.onnx (INT8) and model-fp32.onnx of `tiny`, as `package` names them. The backbone
    keeps its random initial weights: profiling needs the graph, not good maps, and this way
    the test needs no converted backbone weights."""
    torch.manual_seed(0)
    cfg = load_config("tiny")
    backbone = build_backbone(dataclasses.replace(cfg.backbone, pretrained=False))
    model = MoEAD(cfg, backbone=backbone).eval()
    model.channel_weights = torch.rand(model.feature_channels) + 0.1
    d = tmp_path_factory.mktemp("profile") / "bundle"
    d.mkdir()
    fp32 = export_onnx(model, d / "model-fp32.onnx")
    rng = np.random.default_rng(0)
    calib = [rng.uniform(0, 1, (1, 3, cfg.input_size, cfg.input_size)).astype(np.float32) for _ in range(2)]
    quantize_int8(fp32, d / "model.onnx", calib, "u8")
    return d


def _profile(bundle: Path, *extra: str) -> dict:
    r = cli("profile", "--bundle", str(bundle), *RUNS, "--json", *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_both_graphs_split_into_parts_that_sum_to_the_total(bundle: Path) -> None:
    result = _profile(bundle)
    assert [(m["file"], m["precision"]) for m in result["models"]] == [("model.onnx", "INT8"),
                                                                       ("model-fp32.onnx", "FP32")]
    assert result["threads"] == 1 and result["runs"] == 5
    for m in result["models"]:
        assert list(m["by_part"]) == list(PARTS)
        # Every part of MoEAD is found by its node names, in both precisions.
        assert all(m["by_part"][p]["us"] > 0 and m["by_part"][p]["nodes"] > 0 for p in PARTS), m["by_part"]
        for grouping in ("by_part", "by_op", "by_region"):
            rows = m[grouping].values()
            assert sum(r["nodes"] for r in rows) == m["nodes"]
            assert sum(r["us"] for r in rows) == pytest.approx(m["kernel_us"], abs=0.01 * len(rows))
        assert m["unprofiled_run_us"] > 0 and m["profiled_run_us"] > 0
    int8, fp32 = result["models"]
    assert "QLinearConv" in int8["by_op"] and "QLinearConv" not in fp32["by_op"]
    # Every node lands in a module region: fusions ("fused /reconstruction/moe1/..."), nodes
    # named after an initializer (backbone.stem.conv.bias_DequantizeLinear) and the layout
    # nodes onnxruntime inserts without a name (Transpose_token_N, ReorderOutput) included.
    for m in result["models"]:
        assert all(re.match(r"^(backbone/(stem|blocks\.\d+)|neck|reconstruction.*|\(top level\))$", k)
                   for k in m["by_region"]), list(m["by_region"])
    speedup = result["speedup"]
    for p in PARTS:
        assert speedup[p] == pytest.approx(fp32["by_part"][p]["us"] / int8["by_part"][p]["us"], rel=1e-2)
    assert speedup["run (unprofiled)"] > 0


def test_text_report_names_the_overhead_and_the_ratio(bundle: Path) -> None:
    r = cli("profile", "--bundle", str(bundle), *RUNS, "--by", "part,region")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "model.onnx (INT8)" in out and "model-fp32.onnx (FP32)" in out
    assert out.count("profiler overhead: unprofiled run") == 2
    assert "FP32/INT8" in out and "run (unprofiled)" in out
    assert "reconstruction/moe1" in out and "op type" not in out


def test_one_graph_profiles_without_a_ratio(bundle: Path, tmp_path: Path) -> None:
    only = tmp_path / "fp32-only"
    only.mkdir()
    shutil.copy(bundle / "model-fp32.onnx", only)
    result = _profile(only)
    assert [m["precision"] for m in result["models"]] == ["FP32"]
    assert "speedup" not in result


def test_missing_bundle_or_models_is_one_clear_line(tmp_path: Path, capsys) -> None:
    """Checked before onnxruntime is loaded, so in-process is the same as the command line."""
    assert main(["profile", "--bundle", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope'}: bundle folder does not exist"
    assert main(["profile", "--bundle", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert str(tmp_path / "model.onnx") in err and str(tmp_path / "model-fp32.onnx") in err
    assert main(["profile", "--bundle", str(tmp_path), "--by", "layer"]) == 2
    assert "--by" in capsys.readouterr().err


def test_a_profile_that_lost_runs_is_refused_naming_the_model() -> None:
    """Every ProfileError names the path, as the one-line errors of the other commands do."""
    events = [{"cat": "Session", "name": "model_run", "ts": t, "dur": 1} for t in range(3)]
    with pytest.raises(ProfileError, match=r"^/b/model\.onnx: the profile holds 3 runs, not 7: use fewer --runs$"):
        _measured(Path("/b/model.onnx"), events, 2, 5)
