"""A short evaluation report: report.md with a metrics table and two figures.

API::

    @dataclass class HeatmapExample:
        image: np.ndarray        # uint8 HxWx3 RGB, at the map's size
        anomaly_map: np.ndarray  # float HxW (post-processed, full resolution)
        mask: np.ndarray | None  # HxW {0,1} ground truth, drawn as a contour
        score: float
        caption: str             # e.g. "brick/scratch/003.png"
    write_report(out_dir, *, title: str, metric_sets: Mapping[str, dict], labels, scores,
                 threshold: float, examples: Sequence[HeatmapExample] = (),
                 notes: Sequence[str] = ()) -> Path
        metric_sets: {"fp32": metric_set(...), "int8": metric_set(...)} (eval.metrics shape);
        labels/scores: the image labels (0 good, 1 defective) and scores of the shipped model.
        Writes out_dir/report.md, out_dir/score_distribution.png and (with examples)
        out_dir/heatmaps.png; returns the report.md path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: reports are written on boards and CI without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

_METRICS = ("image_auroc", "pixel_auroc", "pro")


@dataclass
class HeatmapExample:
    image: np.ndarray
    anomaly_map: np.ndarray
    mask: np.ndarray | None
    score: float
    caption: str


def _table(metric_sets: Mapping[str, dict]) -> list[str]:
    names = list(metric_sets)
    header = "| category | " + " | ".join(f"{m} ({n})" for n in names for m in _METRICS) + " |"
    rule = "|---|" + "---:|" * (len(names) * len(_METRICS))
    cats = sorted({c for ms in metric_sets.values() for c in ms["per_category"]})
    rows = [header, rule]
    for cat in cats:
        cells = []
        for n in names:
            per = metric_sets[n]["per_category"].get(cat)
            cells += [f"{per[m]:.4f}" if per else "–" for m in _METRICS]
        rows.append(f"| {cat} | " + " | ".join(cells) + " |")
    mean = [f"**{metric_sets[n][m]:.4f}**" for n in names for m in _METRICS]
    rows.append("| **mean** | " + " | ".join(mean) + " |")
    return rows


def _score_plot(path: Path, labels: np.ndarray, scores: np.ndarray, threshold: float) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    bins = np.linspace(min(scores.min(), threshold), max(scores.max(), threshold), 40)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.65, color="#2a9d8f", label=f"good ({(labels == 0).sum()})")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.65, color="#e76f51", label=f"defective ({(labels == 1).sum()})")
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1.2, label=f"threshold {threshold:.4g}")
    ax.set_xlabel("image score")
    ax.set_ylabel("test images")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _heatmap_plot(path: Path, examples: Sequence[HeatmapExample], vmin: float, vmax: float) -> None:
    n = len(examples)
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 5.0), dpi=110, squeeze=False)
    for i, ex in enumerate(examples):
        axes[0, i].imshow(ex.image)
        axes[0, i].set_title(ex.caption, fontsize=7)
        axes[1, i].imshow(ex.image)
        axes[1, i].imshow(ex.anomaly_map, cmap="jet", alpha=0.45, vmin=vmin, vmax=vmax)
        if ex.mask is not None and np.any(ex.mask):
            axes[1, i].contour(ex.mask, levels=[0.5], colors="white", linewidths=0.8)
        axes[1, i].set_title(f"score {ex.score:.4g}", fontsize=7)
        for ax in axes[:, i]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(out_dir: str | Path, *, title: str, metric_sets: Mapping[str, dict],
                 labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
                 threshold: float, examples: Sequence[HeatmapExample] = (),
                 notes: Sequence[str] = ()) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = np.asarray(labels).astype(np.int64)
    s = np.asarray(scores, np.float64)
    if y.shape != s.shape or y.size == 0:
        raise ValueError(f"write_report: {y.size} labels and {s.size} scores (must match, non-empty)")
    _score_plot(out / "score_distribution.png", y, s, threshold)
    good, bad = s[y == 0], s[y == 1]
    lines = [f"# {title}", ""]
    if metric_sets:
        lines += ["## Metrics", "", *_table(metric_sets), ""]
        lines += ["Means are over categories. PRO is integrated up to FPR 0.3 and normalized.", ""]
    lines += ["## Score distribution", "", "![score distribution](score_distribution.png)", ""]
    lines.append(f"Threshold {threshold:.6g}: " + ", ".join(filter(None, [
        f"{int((good >= threshold).sum())}/{good.size} good images flagged" if good.size else "",
        f"{int((bad < threshold).sum())}/{bad.size} defective images missed" if bad.size else "",
    ])) + ".")
    lines.append("")
    if examples:
        # One colour scale for all examples, spanning the values they have: distances never
        # reach 0, so a scale from 0 would paint every map the same warm colour.
        vmin = float(min(np.min(e.anomaly_map) for e in examples))
        vmax = float(max(np.max(e.anomaly_map) for e in examples))
        _heatmap_plot(out / "heatmaps.png", examples, vmin, max(vmax, vmin + 1e-12))
        lines += ["## Heatmaps", "",
                  "Top: input; bottom: anomaly map (shared colour scale), ground truth outlined in white.",
                  "", "![heatmaps](heatmaps.png)", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
