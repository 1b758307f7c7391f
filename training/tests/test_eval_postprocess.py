"""Post-processing against an independent implementation (torch interpolate + scipy + avg_pool2d)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from moead_edge.eval.postprocess import postprocess


def _reference(maps: np.ndarray, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    up = spec["upsample"]
    t = F.interpolate(torch.from_numpy(maps).double(), size=(up["height"], up["width"]),
                      mode="bilinear", align_corners=up["align_corners"])
    full = t[:, 0].numpy().astype(np.float32)
    if spec["blur_sigma"] > 0:
        full = np.stack([ndimage.gaussian_filter(f, spec["blur_sigma"], truncate=4.0, mode="reflect")
                         for f in full])
    if spec["score"]["method"] == "max":
        scores = full.reshape(len(full), -1).max(axis=1)
    else:
        k = spec["score"]["kernel"]
        pooled = F.avg_pool2d(torch.from_numpy(full).double()[:, None], k, stride=1)
        scores = pooled.flatten(1).max(dim=1).values.numpy()
    return full, scores


def _spec(w: int, h: int, align: bool, sigma: float, score: dict) -> dict:
    return {"upsample": {"mode": "bilinear", "align_corners": align, "width": w, "height": h},
            "blur_sigma": sigma, "score": score}


@pytest.mark.parametrize("spec", [
    _spec(224, 224, True, 4.0, {"method": "avgpool_max", "kernel": 16}),
    _spec(224, 224, False, 4.0, {"method": "avgpool_max", "kernel": 16}),
    _spec(64, 50, True, 0.0, {"method": "max"}),
    _spec(33, 47, False, 1.5, {"method": "max"}),
    _spec(40, 40, True, 2.0, {"method": "avgpool_max", "kernel": 40}),
])
def test_matches_independent_implementation(spec: dict) -> None:
    rng = np.random.default_rng(1)
    maps = (rng.random((3, 1, 14, 11)) * 3).astype(np.float32)
    full, scores = postprocess(maps, spec)
    ref_full, ref_scores = _reference(maps, spec)
    assert full.dtype == np.float32 and full.shape == (3, spec["upsample"]["height"], spec["upsample"]["width"])
    np.testing.assert_allclose(full, ref_full, rtol=0, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=1e-5)


def test_accepts_unbatched_maps_and_refuses_bad_shapes() -> None:
    spec = _spec(28, 28, True, 1.0, {"method": "max"})
    one = np.random.default_rng(2).random((14, 14)).astype(np.float32)
    full, scores = postprocess(one, spec)
    assert full.shape == (1, 28, 28) and scores.shape == (1,)
    with pytest.raises(ValueError, match="one channel"):
        postprocess(np.zeros((1, 2, 14, 14), np.float32), spec)


def test_kernel_larger_than_map_names_the_field() -> None:
    spec = _spec(20, 20, True, 0.0, {"method": "avgpool_max", "kernel": 21})
    with pytest.raises(ValueError, match="postprocess.score.kernel"):
        postprocess(np.zeros((1, 1, 7, 7), np.float32), spec)
