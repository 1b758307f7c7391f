"""The MobileNetV2 port with nsfwjs' ImageNet weights, checked against plain numpy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from moead_edge.backbones import BackboneSpec, build_backbone, weights_provenance
from moead_edge.backbones import nsfwjs


@pytest.fixture(scope="module")
def keras() -> dict:
    """The Keras-layout tensors straight from the npm tarball (fetched and integrity-checked)."""
    return nsfwjs.read_tfjs_model(nsfwjs.fetch_tarball())


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return build_backbone(BackboneSpec("mobilenet_v2", ("expanded_conv", "block_2", "block_5", "block_10"), True))


def _conv_nhwc(x: np.ndarray, k: np.ndarray, stride: int, pad: tuple[int, int, int, int]) -> np.ndarray:
    """x (H, W, Cin), k (kh, kw, Cin, Cout) Keras layout; pad = (top, bottom, left, right)."""
    x = np.pad(x, ((pad[0], pad[1]), (pad[2], pad[3]), (0, 0)))
    kh, kw = k.shape[:2]
    ho, wo = (x.shape[0] - kh) // stride + 1, (x.shape[1] - kw) // stride + 1
    out = np.zeros((ho, wo, k.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += x[i:i + stride * ho:stride, j:j + stride * wo:stride] @ k[i, j]
    return out


def _bn(x: np.ndarray, t: dict, name: str) -> np.ndarray:
    return (x - t[f"{name}/moving_mean"]) / np.sqrt(t[f"{name}/moving_variance"] + 1e-3) * t[f"{name}/gamma"] \
        + t[f"{name}/beta"]


def test_first_layers_match_numpy(keras: dict, net: torch.nn.Module) -> None:
    t = {k: v.astype(np.float64) for k, v in keras["tensors"].items()}
    rng = np.random.default_rng(0)
    img = rng.uniform(-1, 1, (32, 32, 3))
    # Conv1: Keras pads (0, 1) rows and columns before the stride-2 3x3 conv.
    stem = np.clip(_bn(_conv_nhwc(img, t["Conv1/kernel"], 2, (0, 1, 0, 1)), t, "bn_Conv1"), 0, 6)
    dk = t["expanded_conv_depthwise/depthwise_kernel"]  # (3, 3, 32, 1): one filter per channel
    padded = np.pad(stem, ((1, 1), (1, 1), (0, 0)))
    dw = sum(padded[i:i + 16, j:j + 16] * dk[i, j, :, 0] for i in range(3) for j in range(3))
    dw = np.clip(_bn(dw, t, "expanded_conv_depthwise_BN"), 0, 6)
    proj = _bn(_conv_nhwc(dw, t["expanded_conv_project/kernel"], 1, (0, 0, 0, 0)), t, "expanded_conv_project_BN")
    with torch.no_grad():
        got = net(torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32)))[0][0].numpy()
    assert got.shape == (16, 16, 16)
    np.testing.assert_allclose(got.transpose(1, 2, 0), proj, rtol=1e-4, atol=1e-4)


def test_dequantization_and_frozen_part(keras: dict) -> None:
    assert keras["keras_version"] == "2.2.4"
    frozen = [l["name"] for l in keras["layers"] if not l["trainable"]]
    assert "block_10_project_BN" in frozen and "block_11_expand" not in frozen
    var = keras["tensors"]["bn_Conv1/moving_variance"]
    assert var.dtype == np.float32 and (var >= 0).all()


def test_taps_are_finite_and_normalized_looking(net: torch.nn.Module) -> None:
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.uniform(-1, 1, (2, 3, 224, 224)).astype(np.float32))
    with torch.no_grad():
        taps = net(x)
    assert [tuple(t.shape[1:]) for t in taps] == [(16, 112, 112), (24, 56, 56), (32, 28, 28), (96, 14, 14)]
    for t in taps:
        assert torch.isfinite(t).all()
        assert 0.1 < float(t.std()) < 100  # BN-normalized scale, neither dead nor exploding
    assert sum(p.numel() for p in net.parameters()) == 305_984


def test_provenance_names_package_license_and_tarball() -> None:
    p = weights_provenance(BackboneSpec("mobilenet_v2", ("block_10",), True))
    assert p["license"] == "MIT" and "nsfwjs@4.4.0" in p["source"] and len(p["sha256"]) == 64


def test_corrupt_tarball_is_refused(tmp_path) -> None:
    (tmp_path / f"{nsfwjs.PACKAGE}-{nsfwjs.VERSION}.tgz").write_bytes(b"not the package")
    with pytest.raises(nsfwjs.ConversionError, match="integrity mismatch"):
        nsfwjs.fetch_tarball(tmp_path)
