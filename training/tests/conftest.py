"""Shared fixtures for the toolchain tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from moead_edge.data import synth

# Generator arguments of the shared tiny benchmark: two categories, every defect type once.
TINY = dict(categories=["brick", "wood"], train=6, test_good=3, test_defect=6, size=96, seed=7)


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated MVTec-layout dataset (read-only: copy before changing it)."""
    root = tmp_path_factory.mktemp("bench") / "synth"
    synth.generate(root, **TINY)
    return root


@pytest.fixture
def input_spec() -> dict:
    """A manifest `input` section (ImageNet normalization, as the reference uses)."""
    return {
        "name": "image", "width": 64, "height": 48, "color": "RGB", "layout": "NCHW",
        "dtype": "float32", "resize": "bilinear", "scale": 1 / 255,
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
    }
