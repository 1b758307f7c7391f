"""The benchmark generator: determinism, layout and exact masks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from moead_edge.data import synth
from conftest import TINY


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_counts(tiny_benchmark: Path) -> None:
    for cat in TINY["categories"]:
        base = tiny_benchmark / cat
        assert len(list((base / "train" / "good").glob("*.png"))) == TINY["train"]
        assert len(list((base / "test" / "good").glob("*.png"))) == TINY["test_good"]
        for defect in synth.DEFECT_TYPES:  # test_defect == 6: one of each type
            assert [p.name for p in (base / "test" / defect).iterdir()] == ["000.png"]
            assert [p.name for p in (base / "ground_truth" / defect).iterdir()] == ["000_mask.png"]
    assert (tiny_benchmark / "benchmark.json").is_file()


def test_same_seed_same_bytes_and_subset_independent(tiny_benchmark: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    synth.generate(again, **TINY)
    assert _digests(again) == _digests(tiny_benchmark)
    # One category alone is byte-identical to the same category generated among others.
    alone = tmp_path / "alone"
    synth.generate(alone, **{**TINY, "categories": ["wood"]})
    want = {k: v for k, v in _digests(tiny_benchmark).items() if k.startswith("wood/")}
    got = {k: v for k, v in _digests(alone).items() if k.startswith("wood/")}
    assert got == want


def test_other_seed_other_images(tiny_benchmark: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    synth.generate(other, **{**TINY, "seed": TINY["seed"] + 1, "categories": ["brick"]})
    a = tiny_benchmark / "brick" / "train" / "good" / "000.png"
    b = other / "brick" / "train" / "good" / "000.png"
    assert a.read_bytes() != b.read_bytes()


def test_good_images_vary_but_stay_the_same_surface(tiny_benchmark: Path) -> None:
    imgs = [np.asarray(Image.open(p), np.float64)
            for p in sorted((tiny_benchmark / "brick" / "train" / "good").glob("*.png"))]
    assert all(i.shape == (TINY["size"], TINY["size"], 3) for i in imgs)
    assert all(np.abs(imgs[0] - i).mean() > 1 for i in imgs[1:])  # different crops
    means = np.array([i.mean(axis=(0, 1)) for i in imgs])
    assert np.ptp(means, axis=0).max() < 40  # same colours: no stray content


@pytest.mark.parametrize("defect", synth.DEFECT_TYPES)
def test_written_defects_have_exact_masks(tiny_benchmark: Path, defect: str) -> None:
    for cat in TINY["categories"]:
        # Rebuild the defect-free base from the same per-image generator the writer used.
        rng = synth._rng(TINY["seed"], cat, "test", defect, 0)
        base = synth.good_image(cat, rng, TINY["size"])
        img = np.asarray(Image.open(tiny_benchmark / cat / "test" / defect / "000.png"))
        mask = np.asarray(Image.open(tiny_benchmark / cat / "ground_truth" / defect / "000_mask.png"))
        assert set(np.unique(mask)) <= {0, 255}
        m = mask > 0
        assert m.any(), f"{cat}/{defect}: empty mask"
        assert m.mean() < 0.1, f"{cat}/{defect}: defect covers {m.mean():.1%} of the image"
        assert np.array_equal(img[~m], base[~m]), f"{cat}/{defect}: pixels changed outside the mask"
        changed = np.any(img != base, axis=-1)
        assert changed[m].mean() > 0.5, f"{cat}/{defect}: most of the mask is unchanged"
        border = 4
        assert not m[:border].any() and not m[-border:].any()
        assert not m[:, :border].any() and not m[:, -border:].any()


def test_add_defect_many_draws_keep_the_mask_contract() -> None:
    for i in range(12):
        rng = np.random.default_rng(i)
        base = synth.good_image("gravel", rng, 128)
        defect = synth.DEFECT_TYPES[i % len(synth.DEFECT_TYPES)]
        img, mask = synth.add_defect(base, defect, "gravel", rng)
        assert mask.any() and np.array_equal(img[~mask], base[~mask])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown categories"):
        synth.generate("/nonexistent-never-written", ["marble"])
    with pytest.raises(ValueError, match="unknown defect"):
        synth.add_defect(np.zeros((64, 64, 3), np.uint8), "dent", "brick", np.random.default_rng(0))
    assert synth.main(["--out", "/nonexistent-never-written", "--categories", "marble"]) == 2


def test_regenerating_refuses_a_folder_of_another_generation(tmp_path: Path) -> None:
    small = dict(categories=["wood"], train=2, test_good=1, test_defect=6, size=64, seed=3)
    out = tmp_path / "bench"
    synth.generate(out, **small)
    before = _digests(out)
    synth.generate(out, **small)  # the same generation again: allowed, and the same bytes
    assert _digests(out) == before
    # Fewer images would have left train/good/001.png and the defect folders behind.
    with pytest.raises(ValueError, match=f"{out}: not empty, and not an identical earlier generation"):
        synth.generate(out, **{**small, "train": 1, "test_defect": 0})
    assert _digests(out) == before  # refused before anything was written
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a benchmark")
    with pytest.raises(ValueError, match="not an identical earlier generation"):
        synth.generate(tmp_path / "mine", **small)
    assert synth.main(["--out", str(out), "--categories", "wood", "--train", "1", "--size", "64"]) == 2
