"""The manifest's post-processing of the model's low-resolution anomaly maps.

Kept numerically identical to the daemon's src/postprocess/map.ts (the shared contract in
src/bundle/manifest.ts, PostprocessSpecSchema), in this order:

1. bilinear upsample to (upsample.width, upsample.height) with PyTorch's
   ``interpolate(mode="bilinear", align_corners=...)`` coordinates, computed in float64
   and stored as float32;
2. ``scipy.ndimage.gaussian_filter(map, blur_sigma, truncate=4, mode="reflect")`` on the
   float32 map (skipped when blur_sigma is 0);
3. image score: ``avgpool_max`` = largest mean over all kernel×kernel windows (stride 1,
   no padding; summed in float64), or ``max``.

API::

    postprocess(maps: np.ndarray, spec: Mapping) -> tuple[np.ndarray, np.ndarray]
        maps: [B,1,h,w], [B,h,w] or [h,w] float; spec: the manifest's `postprocess` dict.
        Returns (full-resolution maps float32 [B,H,W], scores float64 [B]).
    upsample_bilinear(maps [B,h,w], width, height, align_corners) -> float32 [B,H,W]
    image_score(map [H,W], score_spec) -> float
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy import ndimage


def _taps(in_size: int, out_size: int, align_corners: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: lower and upper source index and the weight of the upper one."""
    i = np.arange(out_size, dtype=np.float64)
    if align_corners:
        src = i * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros(out_size)
    else:
        src = np.maximum((i + 0.5) * in_size / out_size - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, src - lo


def upsample_bilinear(maps: np.ndarray, width: int, height: int, align_corners: bool) -> np.ndarray:
    """Bilinear resize of [B,h,w] maps to [B,height,width] (float32)."""
    m = np.asarray(maps, np.float64)
    ylo, yhi, fy = _taps(m.shape[1], height, align_corners)
    xlo, xhi, fx = _taps(m.shape[2], width, align_corners)
    # Same association as the TypeScript port: blend along x within each source row, then
    # blend the two rows along y.
    top = m[:, ylo][:, :, xlo] * (1 - fx) + m[:, ylo][:, :, xhi] * fx
    bottom = m[:, yhi][:, :, xlo] * (1 - fx) + m[:, yhi][:, :, xhi] * fx
    out = top * (1 - fy)[None, :, None] + bottom * fy[None, :, None]
    return out.astype(np.float32)


def image_score(anomaly_map: np.ndarray, score_spec: Mapping[str, Any]) -> float:
    """The image score of one full-resolution map, as the manifest's `score` says."""
    method = score_spec.get("method")
    if method == "max":
        return float(np.max(anomaly_map))
    if method != "avgpool_max":
        raise ValueError(f"postprocess.score.method: unknown method {method!r}")
    k = int(score_spec["kernel"])
    h, w = anomaly_map.shape
    if k > h or k > w:
        raise ValueError(f"postprocess.score.kernel {k} is larger than the {w}x{h} map")
    sat = np.zeros((h + 1, w + 1), np.float64)
    sat[1:, 1:] = np.cumsum(np.cumsum(anomaly_map.astype(np.float64), axis=0), axis=1)
    sums = sat[k:, k:] - sat[:-k, k:] - sat[k:, :-k] + sat[:-k, :-k]
    return float(sums.max() / (k * k))


def postprocess(maps: np.ndarray, spec: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Upsample, blur and score a batch of model maps; see the module docstring."""
    m = np.asarray(maps)
    if m.ndim == 4:
        if m.shape[1] != 1:
            raise ValueError(f"maps: expected one channel, got shape {m.shape}")
        m = m[:, 0]
    elif m.ndim == 2:
        m = m[None]
    elif m.ndim != 3:
        raise ValueError(f"maps: expected [B,1,h,w], [B,h,w] or [h,w], got shape {m.shape}")
    up = spec["upsample"]
    if up.get("mode", "bilinear") != "bilinear":
        raise ValueError(f"postprocess.upsample.mode: unsupported {up.get('mode')!r}")
    full = upsample_bilinear(m, int(up["width"]), int(up["height"]), bool(up["align_corners"]))
    sigma = float(spec["blur_sigma"])
    if sigma < 0:
        raise ValueError(f"postprocess.blur_sigma must be >= 0, got {sigma}")
    if sigma > 0:
        for i in range(full.shape[0]):
            full[i] = ndimage.gaussian_filter(full[i], sigma, truncate=4.0, mode="reflect")
    scores = np.array([image_score(f, spec["score"]) for f in full], np.float64)
    return full, scores
