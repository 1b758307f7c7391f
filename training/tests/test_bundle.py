"""Bundle writing and verification: schema (shared with the daemon), sha256, reference frames."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from moead_edge.bundle import manifest
from moead_edge.bundle.manifest import ManifestError, normalized_score, validate_manifest
from moead_edge.bundle.writer import (BundleError, ReferenceFrame, threshold_from_good,
                                      toolchain_versions, verify_bundle, write_bundle)


def _onnx_model(path: Path, external: bool = False) -> Path:
    """A small real ONNX graph with the bundle's input/output names (a 1x1 conv)."""
    w = numpy_helper.from_array(np.full((1, 3, 1, 1), 1 / 3, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["anomaly_map"])], "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 48, 64])],
        [helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["batch", 1, 48, 64])],
        [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path), save_as_external_data=external, size_threshold=0,
                    location=path.name + ".data" if external else None)
    return path


def _fields(tmp_path: Path, input_spec: dict) -> dict:
    metric = {"image_auroc": 0.97, "pixel_auroc": 0.95, "pro": 0.9,
              "per_category": {"brick": {"image_auroc": 0.97, "pixel_auroc": 0.95, "pro": 0.9}}}
    rng = np.random.default_rng(0)
    return dict(
        name="tiny-test", version="0.1.0", model_file=_onnx_model(tmp_path / "src.onnx"),
        fp32_model_file=_onnx_model(tmp_path / "src-fp32.onnx"), model_precision="int8",
        architecture={"config": "tiny", "backbone": "test", "taps": ["a"], "feature_channels": 8,
                      "hidden_dim": 8, "rounds": 1, "experts": 2, "top_k": 1,
                      "parameters": {"backbone": 3, "reconstruction": 100}},
        input_spec=input_spec,
        output_spec={"name": "anomaly_map", "kind": "l2_distance", "width": 64, "height": 48},
        postprocess_spec={"upsample": {"mode": "bilinear", "align_corners": True, "width": 64, "height": 48},
                          "blur_sigma": 2.0, "score": {"method": "avgpool_max", "kernel": 8}},
        threshold=threshold_from_good([0.1, 0.2, 0.3]),
        reference_frames=[
            ReferenceFrame(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), 0.2, "good"),
            ReferenceFrame(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), 0.9, "anomalous", "scratch_0"),
        ],
        provenance={"data": {"name": "moead-synth", "source": "test", "categories": ["brick"],
                             "train_images": 6, "test_images": 9},
                    "weights": {"backbone": "test", "source": "none", "license": "MIT"},
                    "training": {"epochs": 1, "seconds": 0.5, "seed": 0, "calibration_images": 2},
                    "toolchain": toolchain_versions()},
        metrics={"split": "test", "test_images": 9, "fp32": metric, "int8": metric},
    )


@pytest.fixture
def bundle(tmp_path: Path, input_spec: dict) -> Path:
    out = tmp_path / "bundle"
    write_bundle(out, **_fields(tmp_path, input_spec))
    return out


def test_written_bundle_verifies(bundle: Path) -> None:
    m = verify_bundle(bundle)
    assert m["model"]["file"] == "model.onnx" and m["model"]["precision"] == "int8"
    assert m["model"]["bytes"] == (bundle / "model.onnx").stat().st_size
    assert [f["file"] for f in m["reference_frames"]] == ["reference/good_00.png", "reference/scratch_0.png"]
    assert m["fp32_model"] == {**m["model"], "file": "model-fp32.onnx", "precision": "fp32"}
    assert json.loads((bundle / "manifest.json").read_text()) == m


def test_rewrite_in_place(bundle: Path, tmp_path: Path, input_spec: dict) -> None:
    """Re-writing a bundle from its own model files (e.g. new metrics) keeps them intact."""
    fields = _fields(tmp_path, input_spec)
    fields.update(model_file=bundle / "model.onnx", fp32_model_file=bundle / "model-fp32.onnx",
                  reference_frames=fields["reference_frames"][:1])
    before = (bundle / "model.onnx").read_bytes()
    m = write_bundle(bundle, **fields)
    assert (bundle / "model.onnx").read_bytes() == before
    assert sorted(p.name for p in (bundle / "reference").iterdir()) == ["good_00.png"]
    assert verify_bundle(bundle) == m


def test_tampered_model_is_refused(bundle: Path) -> None:
    model = bundle / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-5] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        verify_bundle(bundle)
    model.write_bytes(bytes(data) + b"\0")
    with pytest.raises(BundleError, match="bytes"):
        verify_bundle(bundle)
    model.unlink()
    with pytest.raises(BundleError, match="model.onnx.*missing"):
        verify_bundle(bundle)


def _tamper(bundle: Path, change) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    change(m)
    (bundle / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("change, field", [
    (lambda m: m["threshold"].update(good_median=m["threshold"]["value"]), "manifest.threshold.good_median"),
    (lambda m: m["model"].update(file="../model.onnx"), "manifest.model.file"),
    (lambda m: m["reference_frames"][1].update(file="/etc/passwd"), r"manifest.reference_frames\[1\].file"),
    # The daemon's rule: every part of a path names a file or folder ("." or "x/" name none).
    (lambda m: m["model"].update(file="reference/"), "manifest.model.file"),
    (lambda m: m["reference_frames"][0].update(file="./x.png"), r"manifest.reference_frames\[0\].file"),
    (lambda m: m["model"].update(file="model\n.onnx"), "manifest.model.file"),
    (lambda m: m["model"].update(sha256="ABC"), "manifest.model.sha256"),
    (lambda m: m["input"].update(extra=1), "manifest.input"),
    (lambda m: m.pop("threshold"), "threshold"),
    (lambda m: m.update(version="1.0"), "manifest.version"),
    (lambda m: m["metrics"]["fp32"].update(image_auroc=1.5), "manifest.metrics.fp32.image_auroc"),
])
def test_tampered_manifest_is_refused(bundle: Path, change, field: str) -> None:
    _tamper(bundle, change)
    with pytest.raises(ManifestError, match=field):
        verify_bundle(bundle)


def test_reference_frame_problems(bundle: Path) -> None:
    (bundle / "reference/good_00.png").write_bytes(b"not a png")
    with pytest.raises(BundleError, match="good_00.png"):
        verify_bundle(bundle)
    (bundle / "reference/good_00.png").unlink()
    with pytest.raises(BundleError, match="missing"):
        verify_bundle(bundle)


def test_reference_frames_carry_size_and_hash(bundle: Path) -> None:
    m = verify_bundle(bundle)
    for f in m["reference_frames"]:
        data = (bundle / f["file"]).read_bytes()
        assert f["bytes"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
        assert list(f) == ["file", "score", "label", "sha256", "bytes"]


def test_tampered_reference_frame_is_refused(bundle: Path) -> None:
    frame = bundle / "reference/scratch_0.png"
    data = bytearray(frame.read_bytes())
    data[-20] ^= 0x01  # inside the PNG's last chunk: same size, different bytes
    frame.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"scratch_0\.png: sha256 .*manifest\.reference_frames\[1\]\.sha256"):
        verify_bundle(bundle)
    frame.write_bytes(bytes(data[:-1]))
    with pytest.raises(BundleError, match=r"scratch_0\.png: .* bytes, manifest\.reference_frames\[1\]\.bytes"):
        verify_bundle(bundle)


def test_reference_frames_without_hashes_still_verify(bundle: Path) -> None:
    """Bundles written before frames had sha256/bytes stay valid; one without the other is not."""
    _tamper(bundle, lambda m: [(f.pop("sha256"), f.pop("bytes")) for f in m["reference_frames"]])
    verify_bundle(bundle)
    _tamper(bundle, lambda m: m["reference_frames"][0].update(sha256="0" * 64))
    with pytest.raises(ManifestError, match=r"manifest\.reference_frames\[0\]: 'bytes' is a dependency"):
        verify_bundle(bundle)


def test_write_refuses_invalid_manifest_and_leaves_none(tmp_path: Path, input_spec: dict) -> None:
    fields = _fields(tmp_path, input_spec)
    fields["name"] = "Not Valid!"
    with pytest.raises(ManifestError, match="manifest.name"):
        write_bundle(tmp_path / "b", **fields)
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_write_refuses_frames_of_the_wrong_size(tmp_path: Path, input_spec: dict) -> None:
    fields = _fields(tmp_path, input_spec)
    fields["reference_frames"] = [ReferenceFrame(np.zeros((64, 64, 3), np.uint8), 0.1, "good")]
    with pytest.raises(ValueError, match=r"reference_frames\[0\].*48x64x3"):
        write_bundle(tmp_path / "b", **fields)


def test_write_refuses_external_data_models(tmp_path: Path, input_spec: dict) -> None:
    fields = _fields(tmp_path, input_spec)
    fields["model_file"] = _onnx_model(tmp_path / "ext.onnx", external=True)
    with pytest.raises(BundleError, match="external data"):
        write_bundle(tmp_path / "b", **fields)


def test_threshold_from_good() -> None:
    t = threshold_from_good(np.arange(101, dtype=float))
    # q99 of 0..100 is 99, the median 50: 99 + 0.25 * (99 - 50).
    assert t["value"] == pytest.approx(111.25) and t["good_median"] == 50 and t["images"] == 101
    flat = threshold_from_good([0.4] * 10)
    assert flat["value"] > flat["good_median"] == 0.4
    with pytest.raises(ValueError, match="no good scores"):
        threshold_from_good([])


def test_schema_is_the_daemons(bundle: Path) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    validate_manifest(m)
    bad = copy.deepcopy(m)
    bad["format"] = "moead-edge.bundle/v2"
    with pytest.raises(ManifestError, match="manifest.format"):
        validate_manifest(bad)


def _manifest_module_at(folder: Path):
    """manifest.py as it runs when the package was installed or copied into `folder`."""
    copied = folder / "moead_edge" / "bundle" / "manifest.py"
    copied.parent.mkdir(parents=True)
    shutil.copy(manifest.__file__, copied)
    spec = importlib.util.spec_from_file_location("moved_manifest", copied)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schema_found_when_the_package_is_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo_schema = Path(__file__).resolve().parents[2] / "models" / "manifest.schema.json"
    moved = _manifest_module_at(tmp_path / "site-packages")
    monkeypatch.delenv("MOEAD_EDGE_MANIFEST_SCHEMA", raising=False)
    monkeypatch.chdir(repo_schema.parents[1] / "training")
    assert moved.schema_path() == repo_schema
    assert moved.load_schema()["$schema"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(FileNotFoundError, match=r"no models/manifest\.schema\.json in any folder above "
                       r".*site-packages/moead_edge/bundle or above .*elsewhere .*MOEAD_EDGE_MANIFEST_SCHEMA"):
        moved.schema_path()
    monkeypatch.setenv("MOEAD_EDGE_MANIFEST_SCHEMA", str(repo_schema))
    assert moved.schema_path() == repo_schema


def test_normalized_score() -> None:
    t = {"value": 3.0, "good_median": 1.0}
    assert [normalized_score(s, t) for s in (1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 9.0)] == [0, 0.25, 0.5, 0.75, 1, 0, 1]
