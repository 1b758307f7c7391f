"""Offline ImageNet weights: the MobileNetV2 that ships inside the npm package nsfwjs.

nsfwjs@4.4.0 (MIT) carries a Keras 2.2.4 MobileNetV2 in TF.js layers format, wrapped in
UMD JavaScript files, with every tensor stored as uint8 plus a per-tensor (min, scale).
Its layers up to block_10 are marked non-trainable in the topology: those are the
original ImageNet weights, and only they are used here. The conversion runs once and
caches a PyTorch state dict under training/.cache.
"""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PACKAGE = "nsfwjs"
VERSION = "4.4.0"
# npm's published integrity of nsfwjs-4.4.0.tgz (sha512, base64) and its sha256 for the manifest.
INTEGRITY = "sha512-krC1fgeTLXtZwgdpKJ0jm7hqv0gTSRQQRL+FhOaxaJ9Wj92t42BO3csO2odwgTAgZgf2RvkwPtp0R8Aa7dc+MA=="
TARBALL_SHA256 = "585cd178f3b994337c4d10a87b080d342fc52f8b9bf0085c4d1f345a3a1c5382"
LICENSE = "MIT"
MODEL_DIR = "package/dist/models/mobilenet_v2"
LAST_IMAGENET_BLOCK = 10

CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache"
CONVERTED = f"mobilenet_v2_imagenet_{PACKAGE}-{VERSION}_block{LAST_IMAGENET_BLOCK}.pt"

# Evaluates the UMD wrappers in a sandbox (they assign module.exports) and prints what we need.
_NODE_READER = r"""
const vm = require('vm'), fs = require('fs'), path = require('path');
const dir = process.argv[1];
function load(file) {
  const module = { exports: {} };
  vm.runInNewContext(fs.readFileSync(path.join(dir, file), 'utf8'), { module, exports: module.exports });
  return module.exports;
}
const model = load('model.min.js');
const manifest = model.weightsManifest;
if (manifest.length !== 1 || manifest[0].paths.length !== 1) throw new Error('expected one weight group with one shard');
const shard = load(manifest[0].paths[0] + '.min.js');
const layers = model.modelTopology.model_config.config.layers.map((l) => ({
  name: l.name, class_name: l.class_name, trainable: l.config.trainable !== false }));
process.stdout.write(JSON.stringify({ keras_version: model.modelTopology.keras_version,
  layers, weights: manifest[0].weights, data: shard }));
"""


class ConversionError(RuntimeError):
    pass


@dataclass(frozen=True)
class Provenance:
    backbone: str
    source: str
    license: str
    sha256: str


def provenance() -> Provenance:
    return Provenance(
        backbone=f"MobileNetV2 1.0 (Keras ImageNet weights, layers Conv1..block_{LAST_IMAGENET_BLOCK})",
        source=f"npm {PACKAGE}@{VERSION} dist/models/mobilenet_v2 (uint8-quantized TF.js layers model; "
        f"layers up to block_{LAST_IMAGENET_BLOCK} are the frozen ImageNet part)",
        license=LICENSE,
        sha256=TARBALL_SHA256,
    )


def _sri_sha512(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch_tarball(cache_dir: Path = CACHE_DIR) -> Path:
    """`npm pack` the package into the cache (once) and check it against the pinned integrity."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    tgz = cache_dir / f"{PACKAGE}-{VERSION}.tgz"
    if not tgz.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise ConversionError("npm is not on PATH: it is needed once to fetch the backbone weights "
                                  f"(npm pack {PACKAGE}@{VERSION})")
        print(f"fetching {PACKAGE}@{VERSION} from the npm registry (once, ~25 MB) ...", flush=True)
        r = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=cache_dir,
                           capture_output=True, text=True)
        if r.returncode != 0 or not tgz.exists():
            raise ConversionError(f"npm pack {PACKAGE}@{VERSION} failed: {r.stderr.strip()[-400:]}")
    got = _sri_sha512(tgz)
    if got != INTEGRITY:
        raise ConversionError(f"{tgz}: integrity mismatch (got {got}, expected {INTEGRITY}); delete it and retry")
    return tgz


def read_tfjs_model(tgz: Path) -> dict:
    """Topology summary, weight specs and the dequantized float32 tensors (Keras layouts)."""
    node = shutil.which("node")
    if node is None:
        raise ConversionError("node is not on PATH: it is needed to read the TF.js model wrappers")
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tgz) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(MODEL_DIR + "/") and m.isfile()]
            if not members:
                raise ConversionError(f"{tgz}: no {MODEL_DIR}/ inside")
            tar.extractall(tmp, members=members, filter="data")
        r = subprocess.run([node, "-e", _NODE_READER, str(Path(tmp) / MODEL_DIR)], capture_output=True, text=True)
    if r.returncode != 0:
        raise ConversionError(f"reading {MODEL_DIR} failed: {r.stderr.strip()[-400:]}")
    info = json.loads(r.stdout)
    raw = base64.b64decode(info.pop("data"))
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for spec in info["weights"]:
        count = int(np.prod(spec["shape"])) if spec["shape"] else 1
        q = spec.get("quantization")
        if q is None:
            arr = np.frombuffer(raw, dtype="<f4", count=count, offset=offset).astype(np.float32)
            offset += 4 * count
        else:
            if q["dtype"] != "uint8":
                raise ConversionError(f"{spec['name']}: unsupported quantization dtype {q['dtype']}")
            codes = np.frombuffer(raw, dtype=np.uint8, count=count, offset=offset)
            arr = (q["min"] + q["scale"] * codes.astype(np.float64)).astype(np.float32)
            offset += count
        tensors[spec["name"]] = arr.reshape(spec["shape"])
    if offset != len(raw):
        raise ConversionError(f"weight shard has {len(raw)} bytes, specs describe {offset}")
    info["tensors"] = tensors
    return info


def _imagenet_layers(info: dict) -> set[str]:
    frozen = {l["name"] for l in info["layers"] if not l["trainable"] and l["class_name"] != "InputLayer"}
    if f"block_{LAST_IMAGENET_BLOCK}_project_BN" not in frozen or f"block_{LAST_IMAGENET_BLOCK + 1}_expand" in frozen:
        raise ConversionError(f"expected the layers up to block_{LAST_IMAGENET_BLOCK} (and no further) to be frozen")
    return frozen


def keras_to_torch_state(info: dict) -> dict[str, torch.Tensor]:
    """Map the frozen Keras tensors onto moead_edge.backbones.mobilenet_v2.MobileNetV2Features keys."""
    from .mobilenet_v2 import keras_layer_names

    frozen = _imagenet_layers(info)
    t = info["tensors"]
    state: dict[str, torch.Tensor] = {}
    for torch_prefix, (kind, keras_name) in keras_layer_names().items():
        if keras_name not in frozen:
            raise ConversionError(f"layer {keras_name} is not in the ImageNet (frozen) part")
        if kind == "conv":
            w = t[f"{keras_name}/kernel"]  # (kh, kw, in, out)
            state[f"{torch_prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
        elif kind == "dwconv":
            w = t[f"{keras_name}/depthwise_kernel"]  # (kh, kw, in, 1)
            state[f"{torch_prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(w.transpose(2, 3, 0, 1)))
        elif kind == "bn":
            state[f"{torch_prefix}.weight"] = torch.from_numpy(t[f"{keras_name}/gamma"].copy())
            state[f"{torch_prefix}.bias"] = torch.from_numpy(t[f"{keras_name}/beta"].copy())
            state[f"{torch_prefix}.running_mean"] = torch.from_numpy(t[f"{keras_name}/moving_mean"].copy())
            state[f"{torch_prefix}.running_var"] = torch.from_numpy(t[f"{keras_name}/moving_variance"].copy())
            state[f"{torch_prefix}.num_batches_tracked"] = torch.tensor(0)
        else:  # pragma: no cover - keras_layer_names only yields the three kinds
            raise ConversionError(f"unknown layer kind {kind}")
    return state


def converted_weights(cache_dir: Path = CACHE_DIR) -> dict[str, torch.Tensor]:
    """The converted ImageNet state dict; converts (and fetches) on first use."""
    path = cache_dir / CONVERTED
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    tgz = fetch_tarball(cache_dir)
    print(f"converting {PACKAGE}@{VERSION} mobilenet_v2 (Conv1..block_{LAST_IMAGENET_BLOCK}) to PyTorch ...", flush=True)
    state = keras_to_torch_state(read_tfjs_model(tgz))
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return state
