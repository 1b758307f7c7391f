"""Anomaly-detection metrics: image AUROC, pixel AUROC and PRO, per category and mean.

API::

    image_auroc(labels [N] {0,1}, scores [N]) -> float
    pixel_auroc(masks [N,H,W] {0,1}, maps [N,H,W]) -> float
    pro(masks [N,H,W] {0,1}, maps [N,H,W], fpr_limit=0.3) -> float
    pro_curve(masks, maps) -> tuple[np.ndarray, np.ndarray]      # (fpr, pro), thresholds descending
    metric_set(categories [N] str, labels [N], scores [N], masks [N,H,W], maps [N,H,W], left_out=None)
        -> {"image_auroc", "pixel_auroc", "pro", "per_category": {cat: {...}}}
        (the manifest's MetricSetSchema; the top-level numbers are the means over categories,
        as MVTec papers report them). A category whose test images cannot give every metric
        (only good images, only defective ones, masks without a defect pixel) raises ValueError,
        or, given a `left_out` dict, is left out of the set with the reason in left_out[category];
        then the result is {} when no category is left.

Choices:
- No AUROC "flipping" (the reference turns an AUC below 0.5 into 1 - AUC): a detector that
  ranks defects below good images is broken and must be reported as such.
- PRO (Bergmann et al., MVTec AD): ground-truth regions are the 8-connected components of
  each mask; for a threshold t the per-region overlap is the fraction of the region's pixels
  with map >= t, averaged over all regions of all images; the false-positive rate is taken
  over every ground-truth-negative pixel. The PRO curve is exact (every distinct map value is
  a threshold), integrated by the trapezoid rule from FPR 0 up to `fpr_limit` (interpolated
  at the limit) and divided by `fpr_limit`, so a perfect detector scores 1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _both_classes(y: np.ndarray, what: str) -> None:
    if y.size == 0:
        raise ValueError(f"{what}: no samples")
    if y.min() == y.max():
        kind = "defective" if y.max() else "good"
        raise ValueError(f"{what}: needs good and defective samples, all {y.size} are {kind}")


def image_auroc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    y = np.asarray(labels).astype(np.int64).ravel()
    s = np.asarray(scores, np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"image_auroc: {y.size} labels but {s.size} scores")
    _both_classes(y, "image_auroc")
    return float(roc_auc_score(y, s))


def _check_maps(masks: np.ndarray, maps: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(masks)
    a = np.asarray(maps, np.float64)
    if m.ndim == 2:
        m, a = m[None], a[None]
    if m.shape != a.shape or m.ndim != 3:
        raise ValueError(f"{what}: masks {m.shape} and maps {a.shape} must both be [N,H,W]")
    return (m > 0), a


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    m, a = _check_maps(masks, maps, "pixel_auroc")
    y = m.ravel().astype(np.int8)
    _both_classes(y, "pixel_auroc")
    return float(roc_auc_score(y, a.ravel()))


def pro_curve(masks: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact (fpr, pro) points for every distinct threshold, from the highest down, starting at (0, 0)."""
    m, a = _check_maps(masks, maps, "pro")
    # Each anomalous pixel carries 1 / (its region's size × number of regions), each normal
    # pixel 1 / (number of normal pixels): sorting pixels by score and summing these weights
    # gives PRO and FPR for every threshold at once.
    weight = np.zeros(m.shape, np.float64)
    regions = 0
    sizes: list[np.ndarray] = []
    labelled = np.zeros(m.shape, np.int64)
    for i in range(m.shape[0]):
        lab, n = ndimage.label(m[i], structure=_EIGHT_CONNECTED)
        labelled[i] = np.where(lab > 0, lab + regions, 0)
        sizes.append(np.bincount(lab.ravel())[1:])
        regions += n
    if regions == 0:
        raise ValueError("pro: the masks contain no defect region")
    negatives = int((~m).sum())
    if negatives == 0:
        raise ValueError("pro: the masks contain no defect-free pixel")
    region_size = np.concatenate(sizes).astype(np.float64)
    weight[m] = 1.0 / (region_size[labelled[m] - 1] * regions)
    is_neg = ~m
    order = np.argsort(-a.ravel(), kind="stable")
    scores = a.ravel()[order]
    pro_w = np.where(is_neg.ravel(), 0.0, weight.ravel())[order]
    pro_c = np.cumsum(pro_w)
    # Counted in integers and divided once, so the last point is exactly FPR 1: summed
    # 1/negatives weights ended at 0.9999999999999998, and pro(fpr_limit=1) then found no
    # point at the limit and interpolated past the end of the curve (it returned ~0).
    fpr_c = np.cumsum(is_neg.ravel()[order]) / negatives
    # A threshold admits all pixels with an equal score together: keep the last of each run.
    last = np.r_[scores[1:] != scores[:-1], True]
    fpr = np.r_[0.0, fpr_c[last]]
    pro_v = np.r_[0.0, pro_c[last]]
    return np.minimum(fpr, 1.0), np.minimum(pro_v, 1.0)


def pro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3) -> float:
    if not 0 < fpr_limit <= 1:
        raise ValueError(f"pro: fpr_limit must be in (0, 1], got {fpr_limit}")
    fpr, pro_v = pro_curve(masks, maps)
    keep = fpr <= fpr_limit
    x = fpr[keep]
    y = pro_v[keep]
    if x[-1] < fpr_limit:
        # The first point beyond the limit exists because the curve ends at FPR 1.
        j = int(np.argmax(fpr > fpr_limit))
        t = (fpr_limit - fpr[j - 1]) / (fpr[j] - fpr[j - 1])
        x = np.r_[x, fpr_limit]
        y = np.r_[y, pro_v[j - 1] + t * (pro_v[j] - pro_v[j - 1])]
    return float(np.trapezoid(y, x) / fpr_limit)


def _category_metrics(y: np.ndarray, s: np.ndarray, m: np.ndarray, a: np.ndarray) -> dict[str, float]:
    return {"image_auroc": image_auroc(y, s), "pixel_auroc": pixel_auroc(m, a), "pro": pro(m, a)}


def metric_set(categories: Sequence[str], labels: Sequence[int] | np.ndarray,
               scores: Sequence[float] | np.ndarray, masks: np.ndarray, maps: np.ndarray,
               left_out: dict[str, str] | None = None) -> dict:
    """Per-category metrics and their means, shaped like the manifest's MetricSetSchema.

    A category that cannot give all three metrics is left out whole when `left_out` is given:
    the manifest's schema wants all three for every category it lists, and a mean over the
    categories that have a metric would not be the mean over those listed."""
    cats = np.asarray(categories)
    y = np.asarray(labels)
    s = np.asarray(scores, np.float64)
    m = np.asarray(masks)
    a = np.asarray(maps)
    if not (len(cats) == len(y) == len(s) == len(m) == len(a)):
        raise ValueError(f"metric_set: lengths differ: categories {len(cats)}, labels {len(y)}, "
                         f"scores {len(s)}, masks {len(m)}, maps {len(a)}")
    per: dict[str, dict[str, float]] = {}
    for cat in sorted(set(cats.tolist())):
        sel = cats == cat
        try:
            per[cat] = _category_metrics(y[sel], s[sel], m[sel], a[sel])
        except ValueError as e:
            if left_out is None:
                raise ValueError(f"category {cat!r}: {e}") from e
            left_out[cat] = str(e)
    if not per:
        return {}
    mean = {k: float(np.mean([v[k] for v in per.values()])) for k in ("image_auroc", "pixel_auroc", "pro")}
    return {**mean, "per_category": per}
