"""Metrics against cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from moead_edge.eval.metrics import image_auroc, metric_set, pixel_auroc, pro, pro_curve


def test_image_auroc_hand_case() -> None:
    # Defect 0.35 beats one of the two good scores, defect 0.8 beats both: 3 of 4 pairs.
    assert image_auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert image_auroc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert image_auroc([1, 0], [0.2, 0.9]) == pytest.approx(0.0)  # not flipped to 1.0


def test_image_auroc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="all 3 are good"):
        image_auroc([0, 0, 0], [0.1, 0.2, 0.3])


def test_pixel_auroc_hand_case() -> None:
    masks = np.array([[[0, 1], [0, 0]], [[0, 0], [1, 0]]])
    maps = np.array([[[0.1, 0.9], [0.2, 0.3]], [[0.5, 0.0], [0.4, 0.6]]])
    # Defect pixels 0.9 and 0.4 against good 0.1 0.2 0.3 0.5 0.0 0.6: 0.9 beats 6, 0.4 beats 4.
    assert pixel_auroc(masks, maps) == pytest.approx(10 / 12)


# One 1×10 image: region A = pixels 0-1, region B = pixel 9, seven good pixels 2-8.
MASK = np.array([[[1, 1, 0, 0, 0, 0, 0, 0, 0, 1]]])
MAP = np.array([[[0.9, 0.5, 0.8, 0, 0, 0, 0, 0, 0, 0.7]]])


def test_pro_curve_hand_case() -> None:
    fpr, p = pro_curve(MASK, MAP)
    # t=0.9: A half found (0.5/2 regions); t=0.8: one false positive; t=0.7: B found;
    # t=0.5: A complete; t=0: every good pixel is positive.
    np.testing.assert_allclose(fpr, [0, 0, 1 / 7, 1 / 7, 1 / 7, 1])
    np.testing.assert_allclose(p, [0, 0.25, 0.25, 0.75, 1, 1])


def test_pro_integral_hand_case() -> None:
    # PRO is 0.25 up to FPR 1/7, then 1: area = 0.25/7 + (0.3 - 1/7), normalized by 0.3.
    assert pro(MASK, MAP) == pytest.approx((0.25 / 7 + 0.3 - 1 / 7) / 0.3)
    assert pro(MASK, MAP, fpr_limit=1.0) == pytest.approx(0.25 / 7 + 6 / 7)


def test_pro_weighs_regions_equally_and_uses_8_connectivity() -> None:
    mask = np.zeros((1, 6, 6), np.uint8)
    mask[0, 0, 0] = mask[0, 1, 1] = 1  # diagonal neighbours: one region of 2 pixels
    mask[0, 4:6, 4:6] = 1  # a second region of 4 pixels
    maps = np.zeros((1, 6, 6))
    maps[0, 0, 0] = maps[0, 1, 1] = 1.0  # the small region is found entirely, first
    maps[0, 4, 4] = 0.5  # a quarter of the big one next
    fpr, p = pro_curve(mask, maps)
    np.testing.assert_allclose(p[:3], [0, 0.5, 0.625])  # (1 + 0) / 2, then (1 + 1/4) / 2
    np.testing.assert_allclose(fpr[:3], [0, 0, 0])


def test_pro_perfect_detector() -> None:
    rng = np.random.default_rng(0)
    masks = (rng.random((3, 16, 16)) > 0.9).astype(np.uint8)
    maps = masks + 0.01 * rng.random(masks.shape)
    assert pro(masks, maps) == pytest.approx(1.0)


def test_metric_set_means_over_categories() -> None:
    cats = ["a", "a", "b", "b"]
    labels = [0, 1, 0, 1]
    masks = np.zeros((4, 1, 4))
    masks[1, 0, 0] = masks[3, 0, 3] = 1
    maps = np.zeros((4, 1, 4))
    maps[1, 0, 0] = 1.0  # category a: perfect map
    maps[2, 0, 3] = 1.0  # category b: map lights up a good image's pixel
    scores = [0.1, 0.9, 0.5, 0.4]  # a perfect, b inverted
    ms = metric_set(cats, labels, scores, masks, maps)
    assert ms["per_category"]["a"]["image_auroc"] == 1.0
    assert ms["per_category"]["b"]["image_auroc"] == 0.0
    assert ms["image_auroc"] == pytest.approx(0.5)
    assert ms["pixel_auroc"] == pytest.approx(np.mean([ms["per_category"][c]["pixel_auroc"] for c in "ab"]))
    with pytest.raises(ValueError, match="category 'a'"):
        metric_set(["a", "a"], [0, 0], [0.1, 0.2], masks[:2] * 0, maps[:2])


def test_pro_matches_a_plain_threshold_sweep() -> None:
    rng = np.random.default_rng(3)
    masks = np.zeros((4, 20, 20), np.uint8)
    for i in range(4):
        for _ in range(2):
            y, x = rng.integers(0, 16, 2)
            masks[i, y:y + rng.integers(2, 5), x:x + rng.integers(2, 5)] = 1
    maps = np.round(rng.random(masks.shape) + masks * 0.5, 2)  # rounding makes ties
    regions = []
    for i in range(4):
        lab, n = ndimage.label(masks[i], np.ones((3, 3)))
        regions += [(i, lab == k) for k in range(1, n + 1)]
    pts = [(0.0, 0.0)]
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        pts.append(((pred & (masks == 0)).sum() / (masks == 0).sum(),
                    np.mean([pred[i][r].mean() for i, r in regions])))
    fpr, overlap = map(np.array, zip(*pts))
    keep = fpr <= 0.3
    (x0, y0), (x1, y1) = (fpr[keep][-1], overlap[keep][-1]), (fpr[~keep][0], overlap[~keep][0])
    x = np.r_[fpr[keep], 0.3]
    y = np.r_[overlap[keep], y0 + (0.3 - x0) / (x1 - x0) * (y1 - y0)]
    assert pro(masks, maps) == pytest.approx(np.trapezoid(y, x) / 0.3, abs=1e-12)


def test_pro_curve_ends_exactly_at_fpr_1() -> None:
    # Six good pixels: six summed 1/6 weights come to 0.9999999999999999, and pro(fpr_limit=1)
    # then interpolated past the curve's end and returned ~0 for a perfect detector.
    mask = np.array([[[1, 1, 0, 0, 0, 0, 0, 0]]])
    maps = np.array([[[0.9, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]])
    fpr, _ = pro_curve(mask, maps)
    assert fpr[-1] == 1.0
    assert pro(mask, maps, fpr_limit=1.0) == pytest.approx(1.0)


def test_metric_set_leaves_out_a_category_that_cannot_be_measured() -> None:
    cats = ["a", "a", "b", "b"]
    masks = np.zeros((4, 1, 4))
    masks[1, 0, 0] = 1
    maps = np.zeros((4, 1, 4))
    maps[1, 0, 0] = 1.0
    labels, scores = [0, 1, 0, 0], [0.1, 0.9, 0.2, 0.3]  # b: only good test images
    left_out: dict[str, str] = {}
    ms = metric_set(cats, labels, scores, masks, maps, left_out=left_out)
    assert list(ms["per_category"]) == ["a"] and ms["image_auroc"] == 1.0
    assert list(left_out) == ["b"] and "all 2 are good" in left_out["b"]
    left_out.clear()
    assert metric_set(cats[2:], labels[2:], scores[2:], masks[2:], maps[2:], left_out=left_out) == {}
    assert list(left_out) == ["b"]
