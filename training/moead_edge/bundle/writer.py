"""Writing and verifying model bundles (models/quantized/<name>/).

A bundle folder holds ``model.onnx`` (the shipped model), optionally ``model-fp32.onnx``,
``reference/*.png`` (frames at the model input size with the scores the shipped model
gives them, which the daemon's OTA check re-computes) and ``manifest.json``.

API::

    @dataclass(frozen=True) class ReferenceFrame:
        image: np.ndarray   # uint8 HxWx3 RGB, exactly input width x height
        score: float        # image score of the SHIPPED model on exactly this image
        label: str          # "good" | "anomalous"
        name: str | None = None   # file stem; default "<label>_<nn>"
    reference_image(path, input_spec) -> np.ndarray   # uint8 RGB at the input size, as stored
    threshold_from_good(scores, quantile=0.99, margin=0.25) -> dict   # manifest `threshold`
    toolchain_versions() -> dict[str, str]
    write_bundle(out_dir, *, name, version, model_file, architecture, input_spec, output_spec,
                 postprocess_spec, threshold, reference_frames, provenance, metrics,
                 model_precision="int8", fp32_model_file=None, description=None,
                 created=None, schema=None) -> dict         # the manifest written
    verify_bundle(bundle_dir, schema=None) -> dict          # raises BundleError / ManifestError

How to get reference-frame scores right: load the frame with reference_image(), normalize
it (data.mvtec.normalize), run the shipped model, post-process (eval.postprocess) and pass
that score; the PNG stored is that exact uint8 image, so the daemon's resize is identity.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from ..data.images import DataError, load_rgb, resize_rgb
from .manifest import ManifestError, is_bundle_path, validate_manifest

BUNDLE_FORMAT = "moead-edge.bundle/v1"
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
FP32_MODEL_FILE = "model-fp32.onnx"
REFERENCE_DIR = "reference"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class BundleError(ValueError):
    """A bundle folder whose files do not match its manifest; the message names the file."""


@dataclass(frozen=True)
class ReferenceFrame:
    image: np.ndarray
    score: float
    label: str
    name: str | None = None


def reference_image(path: str | Path, input_spec: Mapping[str, Any]) -> np.ndarray:
    """An image file as the uint8 RGB frame a bundle stores (exact-size bilinear to the input)."""
    return resize_rgb(load_rgb(path), int(input_spec["width"]), int(input_spec["height"]))


def threshold_from_good(scores: Sequence[float] | np.ndarray, quantile: float = 0.99,
                        margin: float = 0.25) -> dict:
    """The manifest's `threshold` from image scores of good images.

    value = q + margin · (q − median), q = the `quantile` of the good scores.

    Why these defaults: the 0.99 quantile puts about 1 % of good images like these above
    the line before any margin, a false-alarm rate a line operator tolerates. The good images
    available are usually the training images, which the model has learnt to reconstruct, so
    their scores run lower than unseen good parts; the margin, a quarter of the good spread
    (q − median), keeps unseen good parts and small lighting drift below the threshold while
    staying far below typical defect scores. The margin scales with the spread so that it
    means the same for any backbone's score units.
    """
    s = np.asarray(scores, np.float64).ravel()
    if s.size == 0:
        raise ValueError("threshold_from_good: no good scores")
    if not np.all(np.isfinite(s)) or s.min() < 0:
        raise ValueError("threshold_from_good: scores must be finite and >= 0")
    if not 0.5 <= quantile <= 1:
        raise ValueError(f"threshold_from_good: quantile must be in [0.5, 1], got {quantile}")
    if margin < 0:
        raise ValueError(f"threshold_from_good: margin must be >= 0, got {margin}")
    median = float(np.median(s))
    q = float(np.quantile(s, quantile))
    # Identical scores (a degenerate set) would put the threshold on the median, where the
    # normalized score is undefined: keep a minimal spread.
    spread = max(q - median, 1e-6 * max(abs(median), 1.0))
    return {
        "value": q + margin * spread if q > median else median + (1 + margin) * spread,
        "good_median": median,
        "method": "quantile_margin",
        "quantile": float(quantile),
        "margin": float(margin),
        "images": int(s.size),
    }


def toolchain_versions() -> dict[str, str]:
    """Versions of the toolchain parts that shape a bundle's numbers, for provenance."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("torch", "onnx", "onnxruntime", "numpy", "scipy", "pillow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_single_file_onnx(path: Path) -> None:
    """A bundle ships one file per model: refuse graphs that keep weights in side files."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises several unrelated types for a broken file
        raise BundleError(f"{path}: not a readable ONNX model ({e})") from e
    for t in model.graph.initializer:
        if uses_external_data(t):
            raise BundleError(f"{path}: tensor {t.name!r} is stored in an external data file; "
                              f"export the model as a single file")


def _install_model(src: str | Path, out: Path, filename: str, precision: str) -> dict:
    src = Path(src)
    if not src.is_file():
        raise BundleError(f"{src}: model file does not exist")
    _check_single_file_onnx(src)
    dst = out / filename
    if not (dst.exists() and os.path.samefile(src, dst)):
        shutil.copyfile(src, dst)
    return {"file": filename, "sha256": _sha256(dst), "bytes": dst.stat().st_size, "precision": precision}


def _write_frames(out: Path, frames: Sequence[ReferenceFrame], width: int, height: int) -> list[dict]:
    ref = out / REFERENCE_DIR
    if ref.exists():
        shutil.rmtree(ref)  # frames of a previous bundle in the same folder must not linger
    ref.mkdir(parents=True)
    entries = []
    for i, f in enumerate(frames):
        if f.label not in ("good", "anomalous"):
            raise ValueError(f"reference_frames[{i}].label must be 'good' or 'anomalous', got {f.label!r}")
        img = np.asarray(f.image)
        if img.dtype != np.uint8 or img.shape != (height, width, 3):
            raise ValueError(f"reference_frames[{i}]: expected uint8 {height}x{width}x3 RGB (the model "
                             f"input size), got {img.dtype} {img.shape}")
        if not np.isfinite(f.score) or f.score < 0:
            raise ValueError(f"reference_frames[{i}].score must be finite and >= 0, got {f.score}")
        stem = f.name or f"{f.label}_{i:02d}"
        if not _NAME.match(stem):
            raise ValueError(f"reference_frames[{i}].name {stem!r}: use letters, digits, '.', '_' or '-'")
        rel = f"{REFERENCE_DIR}/{stem}.png"
        if any(e["file"] == rel for e in entries):
            raise ValueError(f"reference_frames[{i}]: duplicate file name {rel}")
        Image.fromarray(img, "RGB").save(out / rel, format="PNG")
        # Size and hash let an OTA download verify the frames like the model file.
        entries.append({"file": rel, "score": float(f.score), "label": f.label,
                        "sha256": _sha256(out / rel), "bytes": (out / rel).stat().st_size})
    return entries


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def write_bundle(out_dir: str | Path, *, name: str, version: str, model_file: str | Path,
                 architecture: Mapping[str, Any], input_spec: Mapping[str, Any],
                 output_spec: Mapping[str, Any], postprocess_spec: Mapping[str, Any],
                 threshold: Mapping[str, Any], reference_frames: Sequence[ReferenceFrame],
                 provenance: Mapping[str, Any], metrics: Mapping[str, Any],
                 model_precision: str = "int8", fp32_model_file: str | Path | None = None,
                 description: str | None = None, created: str | None = None,
                 schema: Mapping[str, Any] | None = None) -> dict:
    """Copy the model(s), write the reference frames and manifest.json; return the manifest.

    The manifest is validated before it is written (a ManifestError leaves no manifest.json
    behind), and the finished folder is re-checked with verify_bundle.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stale = out / MANIFEST
    if stale.exists():
        stale.unlink()  # a half-rewritten folder must never carry a manifest that looks valid
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "name": name,
        "version": version,
        "created": created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if description is not None:
        manifest["description"] = description
    manifest["model"] = _install_model(model_file, out, MODEL_FILE, model_precision)
    if fp32_model_file is not None:
        manifest["fp32_model"] = _install_model(fp32_model_file, out, FP32_MODEL_FILE, "fp32")
    manifest.update({
        "architecture": dict(architecture),
        "input": dict(input_spec),
        "output": dict(output_spec),
        "postprocess": dict(postprocess_spec),
        "threshold": dict(threshold),
        "reference_frames": _write_frames(out, reference_frames, int(input_spec["width"]),
                                          int(input_spec["height"])),
        "provenance": dict(provenance),
        "metrics": dict(metrics),
    })
    # Round-trip through JSON so numpy scalars fail here, not in the daemon.
    manifest = json.loads(json.dumps(manifest))
    validate_manifest(manifest, schema)
    _write_json_atomic(out / MANIFEST, manifest)
    verify_bundle(out, schema)
    return manifest


def _inside(root: Path, rel: str, field: str) -> Path:
    if not is_bundle_path(rel):
        raise ManifestError(f"{field}: {rel!r} is not a path inside the bundle")
    p = (root / rel).resolve()
    if root.resolve() not in p.parents:
        raise BundleError(f"{root / rel}: resolves outside the bundle folder ({field})")
    return p


def _check_size_and_hash(p: Path, entry: Mapping[str, Any], field: str) -> None:
    size = p.stat().st_size
    if size != entry["bytes"]:
        raise BundleError(f"{p}: {size} bytes, {field}.bytes says {entry['bytes']}")
    digest = _sha256(p)
    if digest != entry["sha256"]:
        raise BundleError(f"{p}: sha256 {digest} does not match {field}.sha256 {entry['sha256']}")


def verify_bundle(bundle_dir: str | Path, schema: Mapping[str, Any] | None = None) -> dict:
    """Re-check a bundle folder: schema, sizes and sha256 of the models and of the reference
    frames that list them (older bundles' frames do not), reference frames readable at the
    input size. Returns the manifest; raises BundleError or ManifestError."""
    root = Path(bundle_dir)
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{mpath}: no manifest.json in the bundle folder")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{mpath}: not valid JSON ({e})") from e
    validate_manifest(manifest, schema)
    for key in ("model", "fp32_model"):
        entry = manifest.get(key)
        if entry is None:
            continue
        p = _inside(root, entry["file"], f"manifest.{key}.file")
        if not p.is_file():
            raise BundleError(f"{p}: model file named in manifest.{key}.file is missing")
        _check_size_and_hash(p, entry, f"manifest.{key}")
    w, h = manifest["input"]["width"], manifest["input"]["height"]
    for i, frame in enumerate(manifest["reference_frames"]):
        p = _inside(root, frame["file"], f"manifest.reference_frames[{i}].file")
        if not p.is_file():
            raise BundleError(f"{p}: reference frame named in manifest.reference_frames[{i}] is missing")
        if "sha256" in frame:  # the schema makes sha256 and bytes come together
            _check_size_and_hash(p, frame, f"manifest.reference_frames[{i}]")
        try:
            rgb = load_rgb(p)
        except DataError as e:
            raise BundleError(f"manifest.reference_frames[{i}]: {e}") from e
        if rgb.shape[:2] != (h, w):
            raise BundleError(f"{p}: reference frame is {rgb.shape[1]}x{rgb.shape[0]}, the model input is {w}x{h}")
    return manifest
