"""MVTec-AD-layout folders: discovery, image loading and a torch Dataset.

A *category folder* holds ``train/good/*``, optionally ``test/<good|defect>/*`` and
``ground_truth/<defect>/<stem>_mask.png``. A *dataset root* holds several category
folders (MoEAD's unified multi-class setting trains one model on all of them). Every
function takes either.

API::

    class DataError(ValueError)                     # bad folder/file; the message names the path
    @dataclass(frozen=True) class Sample:           # one image on disk
        path: Path; category: str; defect: str ('good' or the defect folder name)
        label: int (0 good, 1 defective); mask_path: Path | None
    find_categories(root) -> dict[str, Path]        # category name -> category folder
    has_split(root, split, categories=None) -> bool # every selected category has `split`
    discover(root, split="train", categories=None, check_files=True) -> list[Sample]
    load_rgb(path) -> np.ndarray                    # uint8 HxWx3 RGB
    resize_rgb(rgb, width, height) -> np.ndarray    # exact-size PIL bilinear, uint8 HxWx3
    normalize(rgb, input_spec) -> np.ndarray        # float32 3xHxW, manifest `input` semantics
    load_image_for_model(path, input_spec) -> np.ndarray   # load_rgb + resize_rgb + normalize
    load_mask(sample | path | None, width, height) -> np.ndarray  # uint8 HxW in {0,1}, NEAREST
    check_mask_size(sample, image_size=None)        # DataError naming both files if they differ
    class ImageFolderDataset(torch.utils.data.Dataset):
        __init__(root_or_samples, input_spec, split="train", categories=None)
        samples: list[Sample]
        __getitem__(i) -> {"image": float32[3,H,W], "mask": float32[1,H,W], "label": int,
                           "category": str, "path": str}

``input_spec`` is a dict shaped like the manifest's ``input`` section: width, height,
color ("RGB"/"BGR"), scale, mean, std; pixel' = (pixel * scale - mean[c]) / std[c] with c
indexing the tensor's channels in `color` order (as src/preprocess does).

Image preprocessing follows the reference (MoEAD/UniAD): PIL RGB, exact-size bilinear
resize (aspect ratio not kept; PIL anti-aliases when shrinking), masks resized NEAREST.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image
import torch
from torch.utils.data import Dataset

from .images import (  # noqa: F401  (re-exported: this module is the data API)
    UNREADABLE_IMAGE,
    DataError,
    load_image_for_model,
    load_mask,
    load_rgb,
    normalize,
    resize_rgb,
    spec_field,
)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Sample:
    path: Path
    category: str
    defect: str
    label: int
    mask_path: Path | None


def _images_in(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted; hidden files and non-images are ignored."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_categories(root: str | Path) -> dict[str, Path]:
    """Category name → folder. `root` is one category folder or a folder of them."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: dataset folder does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: expected a dataset folder, found a file")
    if (root / "train").is_dir() or (root / "test").is_dir():
        return {root.resolve().name: root}
    cats = {p.name: p for p in _subdirs(root) if (p / "train").is_dir() or (p / "test").is_dir()}
    if not cats:
        found = ", ".join(p.name for p in _subdirs(root)[:8]) or "nothing"
        raise DataError(
            f"{root}: not an MVTec-AD layout: expected train/good/ (one category) or "
            f"<category>/train/good/ folders, found {found}")
    return cats


def _select(root: str | Path, categories: Sequence[str] | None) -> dict[str, Path]:
    cats = find_categories(root)
    if categories is None:
        return cats
    missing = [c for c in categories if c not in cats]
    if missing:
        raise DataError(f"{root}: no category folder {missing}; found {sorted(cats)}")
    return {c: cats[c] for c in categories}


def has_split(root: str | Path, split: str, categories: Sequence[str] | None = None) -> bool:
    """True when every selected category has a `split` folder (e.g. to decide on evaluation)."""
    return all((folder / split).is_dir() for folder in _select(root, categories).values())


def _checked_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file whose structure checks out, without decoding pixels."""
    try:
        with Image.open(path) as im:
            size = im.size
            im.verify()  # reads the header and checks structure without decoding pixels
            return size
    except FileNotFoundError as e:
        raise DataError(f"{path}: image file does not exist") from e
    except UNREADABLE_IMAGE as e:
        raise DataError(f"{path}: unreadable image ({e})") from e


def check_mask_size(sample: Sample, image_size: tuple[int, int] | None = None) -> None:
    """A mask must be drawn at its image's size (`image_size`, read from the file when None):
    fitting one of another size to the image would move its outline without a word."""
    if sample.mask_path is None:
        return
    image_size = image_size or _checked_size(sample.path)
    mask_size = _checked_size(sample.mask_path)
    if mask_size != image_size:
        raise DataError(f"{sample.mask_path}: mask is {mask_size[0]}x{mask_size[1]} but its image {sample.path} "
                        f"is {image_size[0]}x{image_size[1]}")


def _category_samples(name: str, folder: Path, split: str) -> list[Sample]:
    split_dir = folder / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: missing {split}/ folder for category {name!r}")
    stray = _images_in(split_dir)
    if stray:
        raise DataError(
            f"{split_dir}: images must sit in subfolders ({split}/good/, {split}/<defect>/), "
            f"found {stray[0].name} directly in {split}/")
    if split == "train":
        good = split_dir / "good"
        if not good.is_dir():
            raise DataError(f"{good}: missing train/good/ folder for category {name!r}")
        groups = [good]
        others = [p.name for p in _subdirs(split_dir) if p.name != "good"]
        if others:
            raise DataError(f"{split_dir}: training data must be good images only, found {others}")
    else:
        groups = _subdirs(split_dir)
        if not groups:
            raise DataError(f"{split_dir}: no test/good/ or test/<defect>/ folders")
    samples: list[Sample] = []
    for group in groups:
        images = _images_in(group)
        if not images:
            raise DataError(f"{group}: no images (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
        defect = group.name
        for img in images:
            mask = None
            if defect != "good":
                mask = folder / "ground_truth" / defect / f"{img.stem}_mask.png"
                if not mask.is_file():
                    raise DataError(f"{mask}: missing ground-truth mask for {img}")
            samples.append(Sample(img, name, defect, 0 if defect == "good" else 1, mask))
    return samples


def discover(root: str | Path, split: str = "train", categories: Sequence[str] | None = None,
             check_files: bool = True) -> list[Sample]:
    """All images of `split` in the selected categories (all when None), in a stable order.

    With check_files every image and mask header is opened once, so a broken file, or a mask
    of another size than its image, is reported before a long run rather than in the middle of it.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    samples: list[Sample] = []
    for name, folder in _select(root, categories).items():
        samples.extend(_category_samples(name, folder, split))
    if check_files:
        for s in samples:
            check_mask_size(s, _checked_size(s.path))
    return samples


class ImageFolderDataset(Dataset):
    """Normalized images (and masks at the same size) of one split, for training or testing."""

    def __init__(self, root_or_samples: str | Path | Sequence[Sample], input_spec: Mapping[str, Any],
                 split: str = "train", categories: Sequence[str] | None = None) -> None:
        if isinstance(root_or_samples, (str, Path)):
            self.samples = discover(root_or_samples, split, categories)
        else:
            self.samples = list(root_or_samples)
        self.input_spec = dict(input_spec)
        self.width = int(spec_field(input_spec, "width"))
        self.height = int(spec_field(input_spec, "height"))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        rgb = load_rgb(s.path)
        check_mask_size(s, (rgb.shape[1], rgb.shape[0]))
        image = normalize(resize_rgb(rgb, self.width, self.height), self.input_spec)
        mask = load_mask(s.mask_path, self.width, self.height)
        return {
            "image": torch.from_numpy(image),
            "mask": torch.from_numpy(mask.astype(np.float32))[None],
            "label": s.label,
            "category": s.category,
            "path": str(s.path),
        }
