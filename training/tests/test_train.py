"""End to end on a tiny generated benchmark: the CLI trains `tiny`, exports, quantizes,
evaluates and writes a bundle; parity, fusion, scores and resume are checked, and bad input
gets one clear line and exit status 2."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from moead_edge.bundle.writer import verify_bundle
from moead_edge.data.mvtec import discover, load_image_for_model
from moead_edge.export.onnx_export import run_onnx
from moead_edge.train.steps import quantization_note
from moead_edge.train.trainer import input_spec, load_model

TRAINING = Path(__file__).resolve().parents[1]
EPOCHS = 40


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "moead_edge", *args], cwd=TRAINING, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tiny_benchmark: Path, tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("ci") / "tiny-bundle"
    r = cli("train", "--data", str(tiny_benchmark), "--out", str(out), "--config", "tiny",
            "--epochs", str(EPOCHS), "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    return out, out.with_name(out.name + ".work"), r


def test_train_writes_a_valid_bundle_and_says_what_it_does(trained) -> None:
    out, _, r = trained
    for step in ("[fit]", "[export]", "[quantize]", "[evaluate]", "[package]"):
        assert step in r.stdout
    manifest = verify_bundle(out)
    assert manifest["model"]["precision"] == "int8"
    assert manifest["architecture"]["config"] == "tiny"
    assert manifest["metrics"]["split"] == "test" and "int8" in manifest["metrics"]
    assert manifest["provenance"]["weights"]["license"] == "MIT"
    assert manifest["input"]["mean"] == [0.0, 0.0, 0.0] and manifest["input"]["std"] == [1.0, 1.0, 1.0]
    assert manifest["output"]["kind"] == "whitened_relative_l2_distance"


def test_fit_stores_the_distance_weights(trained) -> None:
    _, work, _ = trained
    model, _ = load_model(work / "model.pt")
    weights = model.channel_weights
    assert weights is not None and weights.shape == (model.feature_channels,)
    assert bool((weights > 0).all()) and bool(torch.isfinite(weights).all())


def test_bundle_fp32_model_matches_pytorch(trained, tiny_benchmark: Path) -> None:
    out, work, _ = trained
    model, _ = load_model(work / "model.pt")
    samples = discover(tiny_benchmark, "test")
    x = np.stack([load_image_for_model(s.path, input_spec(model.cfg)) for s in samples[:4]])
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = run_onnx(out / "model-fp32.onnx", x)
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))


def test_defects_score_above_good_images(trained) -> None:
    _, work, _ = trained
    ev = json.loads((work / "evaluation.json").read_text())
    labels = np.array(ev["test_scores"]["labels"])
    scores = np.array(ev["test_scores"]["int8"])
    assert scores[labels == 1].mean() > scores[labels == 0].mean()
    assert ev["metrics"]["int8"]["image_auroc"] > 0.6


def test_quantized_model_runs_integer_kernels(trained) -> None:
    _, work, _ = trained
    q = json.loads((work / "quantize.json").read_text())
    assert q["integer_kernels"] >= q["quantized_nodes"] > 0
    assert q["weight_bits"] == 8


def test_quantize_step_takes_seven_bit_weights_and_the_manifest_says_so(trained, tmp_path: Path) -> None:
    _, work, _ = trained
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    r = cli("quantize", "--work", str(copy), "--weight-bits", "7")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "per-channel symmetric 7-bit weights" in r.stdout
    q = json.loads((copy / "quantize.json").read_text())
    assert q["weight_bits"] == 7 and q["integer_kernels"] >= q["quantized_nodes"] > 0
    assert quantization_note(q) == "onnxruntime QDQ, u8 activations, per-channel symmetric int8 weights within +-64 (7-bit)"
    # What bundles said before the option existed, for work folders quantized then.
    assert quantization_note({"activations": "u8"}) == "onnxruntime QDQ, u8 activations, per-channel symmetric int8 weights"
    bad = cli("quantize", "--work", str(copy), "--weight-bits", "6")
    assert bad.returncode == 2 and "--weight-bits" in bad.stderr


def test_fit_resumes_and_extends(tiny_benchmark: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    first = cli("fit", "--data", str(tiny_benchmark), "--work", str(work), "--config", "tiny", "--epochs", "2", "--quiet")
    assert first.returncode == 0, first.stderr
    again = cli("fit", "--data", str(tiny_benchmark), "--work", str(work), "--config", "tiny", "--epochs", "3", "--quiet")
    assert again.returncode == 0, again.stderr
    assert "resuming from epoch 2 of 3" in again.stdout
    assert len(torch.load(work / "checkpoint.pt", weights_only=False)["losses"]) == 3


def _fit(data: Path, work: Path, epochs: int, category: str = "brick") -> list[str]:
    """One tiny in-process fit on one category (6 images) on one thread; returns what it logged."""
    from moead_edge.train import steps

    said: list[str] = []
    steps.fit(data, work, "tiny", [category], epochs, True, said.append, progress=False)
    return said


@pytest.fixture
def one_thread(monkeypatch) -> None:
    # Another thread count may sum in another order: identical weights need the same one.
    from moead_edge.train import steps

    monkeypatch.setattr(steps, "choose_threads", lambda: 1)


def test_fit_is_seeded(tiny_benchmark: Path, tmp_path: Path, one_thread) -> None:
    _fit(tiny_benchmark, tmp_path / "a", 2)
    _fit(tiny_benchmark, tmp_path / "b", 2)
    a, b = (torch.load(tmp_path / w / "checkpoint.pt", weights_only=False) for w in "ab")
    assert a["losses"] == b["losses"]
    assert all(torch.equal(a["reconstruction"][k], b["reconstruction"][k]) for k in a["reconstruction"])


def test_fit_does_not_resume_a_run_on_other_images(tiny_benchmark: Path, tmp_path: Path, one_thread) -> None:
    # wood has as many training images as brick: the count alone cannot tell the runs apart.
    _fit(tiny_benchmark, tmp_path / "w", 1, "brick")
    said = _fit(tiny_benchmark, tmp_path / "w", 2, "wood")
    assert not any("resuming" in line for line in said)
    assert any("made from other image files" in line and "starting over" in line for line in said)
    assert len(torch.load(tmp_path / "w" / "checkpoint.pt", weights_only=False)["losses"]) == 2


def test_fit_refuses_fewer_epochs_than_the_checkpoint_has(tiny_benchmark: Path, tmp_path: Path, capsys,
                                                          one_thread) -> None:
    from moead_edge.cli import main

    work = tmp_path / "w"
    _fit(tiny_benchmark, work, 2)
    argv = ["fit", "--data", str(tiny_benchmark), "--categories", "brick", "--work", str(work), "--config", "tiny",
            "--quiet", "--epochs", "1"]
    capsys.readouterr()
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(work / "checkpoint.pt") in lines[0] and "--no-resume" in lines[0]
    assert main([*argv, "--no-resume"]) == 0
    assert len(torch.load(work / "checkpoint.pt", weights_only=False)["losses"]) == 1


def _work_copy(trained, tiny_benchmark: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the trained work folder pointing at a private copy of its data, to break."""
    _, work, _ = trained
    data = Path(shutil.copytree(tiny_benchmark, tmp_path / "data"))
    copy = Path(shutil.copytree(work, tmp_path / "work", ignore=shutil.ignore_patterns("features.pt", "report")))
    run = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**run, "data": str(data)}))
    return data, copy


def test_a_category_without_defects_is_left_out_of_the_metrics(trained, tiny_benchmark: Path,
                                                               tmp_path: Path) -> None:
    data, work = _work_copy(trained, tiny_benchmark, tmp_path)
    for folder in (data / "wood" / "test").iterdir():
        if folder.name != "good":
            shutil.rmtree(folder)
    shutil.rmtree(data / "wood" / "ground_truth")
    r = cli("evaluate", "--work", str(work), "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"{data / 'wood' / 'test'}: category 'wood' left out of the metrics" in r.stdout
    ev = json.loads((work / "evaluation.json").read_text())
    assert list(ev["metrics"]["int8"]["per_category"]) == ["brick"] and list(ev["metrics_left_out"]) == ["wood"]
    assert "left out of the metrics" in (work / "report" / "report.md").read_text()
    out = tmp_path / "bundle"
    r = cli("package", "--work", str(work), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert list(verify_bundle(out)["metrics"]["fp32"]["per_category"]) == ["brick"]


def test_a_category_without_a_test_split_leaves_the_others_measured(trained, tiny_benchmark: Path,
                                                                    tmp_path: Path) -> None:
    data, work = _work_copy(trained, tiny_benchmark, tmp_path)
    shutil.rmtree(data / "wood" / "test")
    r = cli("evaluate", "--work", str(work), "--quiet")
    assert r.returncode == 0, r.stderr
    note = f"{data / 'wood' / 'test'}: category 'wood' left out of the metrics (no test split)"
    assert note in r.stdout
    ev = json.loads((work / "evaluation.json").read_text())
    assert ev["metrics"]["split"] == "test" and ev["metrics"]["untested_categories"] == ["wood"]
    assert list(ev["metrics"]["int8"]["per_category"]) == ["brick"] and "metrics_left_out" not in ev
    assert note in (work / "report" / "report.md").read_text()
    out = tmp_path / "bundle"
    r = cli("package", "--work", str(work), "--out", str(out))
    assert r.returncode == 0, r.stderr
    metrics = verify_bundle(out)["metrics"]
    assert metrics["untested_categories"] == ["wood"] and list(metrics["fp32"]["per_category"]) == ["brick"]
    # With no test split anywhere there is nothing to measure, and the metrics still say which categories.
    shutil.rmtree(data / "brick" / "test")
    r = cli("evaluate", "--work", str(work), "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((work / "evaluation.json").read_text())["metrics"] == {
        "split": "none", "test_images": 0, "untested_categories": ["brick", "wood"]}


def test_evaluate_refuses_a_mask_of_another_size(trained, tiny_benchmark: Path, tmp_path: Path) -> None:
    from PIL import Image

    data, work = _work_copy(trained, tiny_benchmark, tmp_path)
    mask = data / "wood" / "ground_truth" / "hole" / "000_mask.png"
    with Image.open(mask) as m:
        m.resize((60, 40)).save(mask)
    r = cli("evaluate", "--work", str(work), "--quiet")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(mask) in lines[0] and str(data / "wood" / "test" / "hole" / "000.png") in lines[0]


@pytest.mark.parametrize("case", ["missing", "empty", "unreadable", "layout", "config"])
def test_bad_input_is_one_line_naming_the_path(case: str, tiny_benchmark: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = "tiny"
    if case == "missing":
        named = data
    elif case == "empty":
        (data / "train" / "good").mkdir(parents=True)
        named = data / "train" / "good"
    elif case == "unreadable":
        shutil.copytree(tiny_benchmark / "brick", data)
        named = data / "train" / "good" / "broken.png"
        named.write_bytes(b"\x89PNG not really")
    elif case == "layout":
        (data / "pictures").mkdir(parents=True)
        (data / "pictures" / "a.png").write_bytes(b"")
        named = data
    else:
        shutil.copytree(tiny_benchmark / "brick", data)
        config = str(tmp_path / "nope.yaml")
        named = Path(config)
    r = cli("train", "--data", str(data), "--out", str(tmp_path / "b"), "--config", config, "--quiet")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert str(named) in lines[0]


def test_threads_follow_what_is_busy_now() -> None:
    """The thread count reads the CPU use of the last half second, not the lagging load average:
    a process spinning on one core is seen at once, and taken out of the threads."""
    from moead_edge.train.steps import _busy_cores, choose_threads

    cores = os.cpu_count() or 1
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = _busy_cores()
        assert busy >= 0.7, f"a spinning process uses a core; measured {busy:.2f} busy cores"
        assert 1 <= choose_threads() <= max(1, cores - 1)
    finally:
        spinner.kill()
        spinner.wait()


def test_toolchain_sessions_flush_subnormals_on_their_thread(tmp_path: Path) -> None:
    """Evaluation and the CPU timing run as the daemon runs: subnormal floats flushed to zero on
    the thread that runs the session, even when an earlier session of the process did not ask."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "tiny"], ["y"])], "subnormal", [x], [y],
                              [numpy_helper.from_array(np.array(1e-39, np.float32), "tiny")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "subnormal.onnx"
    onnx.save(model, str(path))
    # A fresh process, whose first session (plain, as the graph passes' probes are) decides what
    # onnxruntime does to the calling thread. Counted at once: once the thread flushes,
    # comparisons read subnormals as zero too.
    script = (
        "import sys, numpy as np, onnxruntime as ort\n"
        "from pathlib import Path\n"
        "x = {'x': np.ones(4, np.float32)}\n"
        "plain = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
        "before = int((plain.run(None, x)[0] != 0).sum())\n"
        "from moead_edge.train.steps import _session\n"
        "after = int((_session(Path(sys.argv[1]), 1).run(None, x)[0] != 0).sum())\n"
        "print(before, after)\n")
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    assert out == ["4", "0"], f"non-zero values before / after _session: {out}"
