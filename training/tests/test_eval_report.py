"""The evaluation report: markdown table, score plot, heatmaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from moead_edge.eval.report import HeatmapExample, write_report


def test_report_files_and_numbers(tmp_path: Path) -> None:
    ms = {"image_auroc": 0.9712, "pixel_auroc": 0.95, "pro": 0.875,
          "per_category": {"wood": {"image_auroc": 0.9712, "pixel_auroc": 0.95, "pro": 0.875}}}
    mask = np.zeros((32, 32), np.uint8)
    mask[10:14, 10:14] = 1
    ex = HeatmapExample(np.full((32, 32, 3), 128, np.uint8), mask * 2.0, mask, 2.0, "wood/hole/000.png")
    path = write_report(tmp_path, title="wood", metric_sets={"fp32": ms, "int8": ms},
                        labels=[0, 0, 0, 1, 1], scores=[0.1, 0.2, 0.6, 0.5, 0.9], threshold=0.55,
                        examples=[ex], notes=["trained on 6 images"])
    text = path.read_text()
    assert "| wood | 0.9712 | 0.9500 | 0.8750 | 0.9712 |" in text
    assert "1/3 good images flagged, 1/2 defective images missed" in text
    assert "trained on 6 images" in text
    for png in ("score_distribution.png", "heatmaps.png"):
        assert png in text
        with Image.open(tmp_path / png) as im:
            assert im.width > 200 and im.height > 200
