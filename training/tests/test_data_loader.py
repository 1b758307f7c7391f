"""The MVTec-layout loader: what it finds, what it refuses (naming the path), what it returns."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from moead_edge.data.mvtec import (DataError, ImageFolderDataset, discover, find_categories,
                                   has_split, load_image_for_model, load_mask, load_rgb)
from conftest import TINY


@pytest.fixture
def bench(tiny_benchmark: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny benchmark that a test may break."""
    return Path(shutil.copytree(tiny_benchmark, tmp_path / "bench"))


def test_unified_discovery(tiny_benchmark: Path) -> None:
    assert sorted(find_categories(tiny_benchmark)) == TINY["categories"]
    train = discover(tiny_benchmark, "train")
    assert len(train) == TINY["train"] * 2 and {s.label for s in train} == {0}
    test = discover(tiny_benchmark, "test")
    assert len(test) == (TINY["test_good"] + TINY["test_defect"]) * 2
    bad = [s for s in test if s.label == 1]
    assert len(bad) == TINY["test_defect"] * 2
    assert all(s.mask_path is not None and s.mask_path.is_file() for s in bad)
    assert all(s.mask_path is None for s in test if s.label == 0)
    assert has_split(tiny_benchmark, "test")


def test_one_category_by_folder_or_by_name(tiny_benchmark: Path) -> None:
    by_folder = discover(tiny_benchmark / "wood", "test")
    by_name = discover(tiny_benchmark, "test", categories=["wood"])
    assert by_folder == by_name and {s.category for s in by_name} == {"wood"}


def test_dataset_items(tiny_benchmark: Path, input_spec: dict) -> None:
    ds = ImageFolderDataset(tiny_benchmark, input_spec, split="test", categories=["brick"])
    bad = next(i for i, s in enumerate(ds.samples) if s.label == 1)
    item = ds[bad]
    assert item["image"].shape == (3, 48, 64) and item["image"].dtype.is_floating_point
    assert item["mask"].shape == (1, 48, 64) and item["mask"].max() == 1
    assert item["label"] == 1 and item["category"] == "brick"
    assert np.array_equal(item["image"].numpy(), load_image_for_model(item["path"], input_spec))
    assert np.array_equal(item["mask"][0].numpy(), load_mask(ds.samples[bad], 64, 48).astype(np.float32))


def test_normalization_and_resize_follow_the_input_spec(tmp_path: Path, input_spec: dict) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    got = load_image_for_model(tmp_path / "x.png", input_spec)
    resized = np.asarray(Image.fromarray(rgb).resize((64, 48), Image.Resampling.BILINEAR), np.float64)
    want = (resized / 255 - np.array(input_spec["mean"])) / np.array(input_spec["std"])
    np.testing.assert_allclose(got, want.transpose(2, 0, 1), atol=1e-5)
    bgr = load_image_for_model(tmp_path / "x.png", {**input_spec, "color": "BGR"})
    want_bgr = (resized[..., ::-1] / 255 - np.array(input_spec["mean"])) / np.array(input_spec["std"])
    np.testing.assert_allclose(bgr, want_bgr.transpose(2, 0, 1), atol=1e-5)


def _error(root: Path, split: str = "train", **kw) -> str:
    with pytest.raises(DataError) as e:
        discover(root, split, **kw)
    return str(e.value)


def test_missing_folder(tmp_path: Path) -> None:
    assert str(tmp_path / "nope") in _error(tmp_path / "nope")


def test_file_instead_of_folder(tmp_path: Path) -> None:
    f = tmp_path / "data.zip"
    f.write_bytes(b"PK")
    assert "found a file" in _error(f)


def test_wrong_layout(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    msg = _error(tmp_path)
    assert str(tmp_path) in msg and "MVTec-AD" in msg and "images" in msg


def test_images_directly_in_train(bench: Path) -> None:
    shutil.copy(bench / "brick/train/good/000.png", bench / "brick/train/stray.png")
    msg = _error(bench)
    assert str(bench / "brick" / "train") in msg and "stray.png" in msg


def test_missing_train_good(bench: Path) -> None:
    shutil.rmtree(bench / "wood/train/good")
    assert str(bench / "wood" / "train" / "good") in _error(bench)


def test_defects_in_train(bench: Path) -> None:
    shutil.copytree(bench / "wood/test/hole", bench / "wood/train/hole")
    assert "good images only" in _error(bench)


def test_no_images(bench: Path) -> None:
    for p in (bench / "brick/train/good").iterdir():
        p.unlink()
    (bench / "brick/train/good/notes.txt").write_text("not an image")
    msg = _error(bench)
    assert str(bench / "brick" / "train" / "good") in msg and "no images" in msg


def test_unreadable_image(bench: Path) -> None:
    broken = bench / "brick/train/good/003.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    msg = _error(bench)
    assert str(broken) in msg and "unreadable" in msg


def _huge_png(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares width x height (Pillow refuses it before reading any pixel)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_image_over_pillows_pixel_limit_is_refused_naming_the_file(bench: Path, tmp_path: Path) -> None:
    # 195 megapixels: over twice Image.MAX_IMAGE_PIXELS, where Pillow raises DecompressionBombError.
    huge = tmp_path / "huge.png"
    _huge_png(huge, 15000, 13000)
    with pytest.raises(DataError, match=r"huge\.png: unreadable image \(Image size \(195000000 pixels\)"):
        load_rgb(huge)
    mask = bench / "wood/ground_truth/crack/000_mask.png"
    _huge_png(mask, 15000, 13000)
    msg = _error(bench, "test")
    assert str(mask) in msg and "unreadable" in msg


def test_missing_mask(bench: Path) -> None:
    mask = bench / "wood/ground_truth/crack/000_mask.png"
    mask.unlink()
    assert str(mask) in _error(bench, "test")


def test_missing_test_split(bench: Path) -> None:
    shutil.rmtree(bench / "wood/test")
    assert not has_split(bench, "test")
    assert has_split(bench, "test", categories=["brick"])
    assert str(bench / "wood" / "test") in _error(bench, "test")


def test_unknown_category(tiny_benchmark: Path) -> None:
    assert "marble" in _error(tiny_benchmark, categories=["marble"])


def test_mask_of_another_size(bench: Path, input_spec: dict) -> None:
    mask = bench / "brick/ground_truth/stain/000_mask.png"
    Image.new("L", (10, 10)).save(mask)
    # discover (what evaluate reads the test split with) refuses it before anything runs...
    msg = _error(bench, "test", categories=["brick"])
    assert f"{mask}: mask is 10x10 but its image {bench / 'brick/test/stain/000.png'} is 96x96" in msg
    # ...and the dataset also when given samples nobody checked.
    ds = ImageFolderDataset(discover(bench, "test", ["brick"], check_files=False), input_spec)
    i = next(i for i, s in enumerate(ds.samples) if s.mask_path == mask)
    with pytest.raises(DataError, match="000_mask.png: mask is 10x10"):
        ds[i]


@pytest.mark.parametrize("defect_value", [1, 255])
def test_any_non_zero_mask_pixel_is_a_defect(defect_value: int, tmp_path: Path) -> None:
    m = np.zeros((8, 8), np.uint8)
    m[2:4, 3:6] = defect_value  # masks saved as 0/1 are as common as MVTec's 0/255
    Image.fromarray(m).save(tmp_path / "m.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png", 8, 8), (m > 0).astype(np.uint8))


def test_16_bit_greyscale_is_scaled_to_8_bits(tmp_path: Path) -> None:
    grey = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    want = np.rint(grey / 257).astype(np.uint8)
    np.testing.assert_array_equal(load_rgb(tmp_path / "g16.png"), np.repeat(want[..., None], 3, axis=2))
