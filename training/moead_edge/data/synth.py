"""Deterministic anomaly-detection benchmark in the MVTec-AD layout.

Real photographs that ship inside scikit-image (CC0 licensed, no download needed) are cut
into "product surface" images; defective test images get one synthetic defect each, with
an exact ground-truth mask.

Command line::

    python -m moead_edge.data.synth --out DIR [--categories a,b|all] [--train N]
        [--test-good N] [--test-defect N] [--size 256] [--seed S]

Python API::

    CATEGORIES: dict[str, SourceSpec]          # the benchmark's categories
    DEFECT_TYPES: tuple[str, ...]              # folder names under test/ and ground_truth/
    generate(out: str | Path, categories: Sequence[str] | None = None, *, train: int = 100,
             test_good: int = 16, test_defect: int = 24, size: int = 256, seed: int = 0,
             progress: bool = False) -> dict          # writes the tree, returns benchmark.json
    good_image(category: str, rng: np.random.Generator, size: int) -> np.ndarray  # uint8 HxWx3
    add_defect(base: np.ndarray, defect: str, category: str, rng) -> tuple[np.ndarray, np.ndarray]
        # (uint8 HxWx3 image, bool HxW mask); pixels outside the mask equal `base` exactly

Layout written (per category)::

    <cat>/train/good/000.png ...
    <cat>/test/good/000.png ...
    <cat>/test/<defect>/000.png ...
    <cat>/ground_truth/<defect>/000_mask.png     (0 / 255, same size as the image)

plus ``benchmark.json`` at the root (sources, licences, seed, counts) for provenance.

The output folder must be new, empty, or hold an identical earlier generation (the same
benchmark.json, which is then written again byte for byte): generating other arguments over an
earlier set would leave its extra files behind, mixed into the new one, so that is refused and
nothing is deleted for you.

Determinism: every image draws from its own generator seeded by (seed, category name,
split, defect, index), so the same arguments give byte-identical files, and generating a
subset of categories gives the same bytes for those categories as generating all of them.

Honest limits: each category comes from ONE photograph, so good test crops overlap the
regions seen in training (like photographing the same product type again); defects are
synthetic. Three sources are greyscale and are colourised with a two-colour ramp so that
colour defects mean something.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

GENERATOR_VERSION = "1"
DATASET_NAME = "moead-synth"


@dataclass(frozen=True)
class SourceSpec:
    """Where a category's good images come from."""

    loader: str  # skimage.data function name
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 in source pixels: the usable area
    crop: int  # crop side in source pixels (jittered by ±5 %)
    # Greyscale sources are mapped onto dark→light colour ramps (None: keep the photo's colours).
    ramp: tuple[tuple[int, int, int], tuple[int, int, int]] | None
    flip: bool  # horizontal flips keep this surface plausible
    licence: str
    description: str


CATEGORIES: dict[str, SourceSpec] = {
    "brick": SourceSpec(
        "brick", (0, 0, 512, 512), 176, ((70, 32, 24), (232, 160, 128)), True,
        "CC0 (cc0textures.com Bricks25, via scikit-image)", "terracotta brick wall"),
    "grass": SourceSpec(
        "grass", (0, 0, 512, 512), 208, ((22, 48, 16), (178, 214, 118)), True,
        "CC0 (DeviantArt linolafett Grass-01, via scikit-image)", "grass turf"),
    "gravel": SourceSpec(
        "gravel", (0, 0, 512, 512), 176, ((48, 42, 36), (222, 210, 190)), True,
        "CC0 (cc0textures.com Gravel04, via scikit-image)", "gravel aggregate"),
    # The cell photograph is a quantitative phase image: its background (left of the cell)
    # is a fine, banded grain that reads like a brushed/matte metal sheet. The region stops
    # above a dark speck at (190, 430) that would look like a hole defect in good images.
    "matte": SourceSpec(
        "cell", (0, 150, 300, 420), 160, ((96, 104, 116), (200, 208, 222)), False,
        "CC0 (Müller et al. 2018 phase image, via scikit-image)", "matte metal sheet"),
    # The table under the coffee cup: the strip right of the saucer is plain wood grain.
    "wood": SourceSpec(
        "coffee", (486, 10, 600, 392), 104, None, False,
        "CC0 (Rachel Michetti, via scikit-image)", "oiled wooden board"),
}

DEFECT_TYPES: tuple[str, ...] = ("scratch", "crack", "hole", "stain", "cut", "color_spot")

# Defects keep this far from the border (in pixels of a 256 image) so that a later
# resize or crop to the model's input keeps them whole.
_MARGIN = 20
# Supersampling factor for anti-aliased shapes.
_SS = 4
# Coverage below this is dropped entirely: the mask then is exactly the changed area
# and hair-thin anti-aliasing fringes do not count as defect.
_MIN_ALPHA = 0.2


@lru_cache(maxsize=None)
def _source_rgb(category: str) -> Image.Image:
    """The category's usable region as an RGB image, contrast-stretched and colourised."""
    import skimage.data

    spec = CATEGORIES[category]
    photo = np.asarray(getattr(skimage.data, spec.loader)())
    x0, y0, x1, y1 = spec.region
    region = photo[y0:y1, x0:x1].astype(np.float64)
    if region.ndim == 2:
        lo, hi = np.percentile(region, [1, 99])
        g = np.clip((region - lo) / max(hi - lo, 1e-6), 0.0, 1.0)[..., None]
        assert spec.ramp is not None, f"{category}: greyscale source needs a colour ramp"
        dark, light = (np.asarray(c, np.float64) for c in spec.ramp)
        region = dark + g * (light - dark)
    rgb = np.clip(np.rint(region[..., :3]), 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def _crop(category: str, rng: np.random.Generator, size: int, side_scale: float = 1.0) -> np.ndarray:
    """A random square crop of the source, resized to size×size, as float64 HxWx3."""
    src = _source_rgb(category)
    spec = CATEGORIES[category]
    side = min(spec.crop * side_scale * rng.uniform(0.95, 1.05), src.width, src.height)
    x = rng.uniform(0, src.width - side)
    y = rng.uniform(0, src.height - side)
    img = src.resize((size, size), Image.Resampling.BILINEAR, box=(x, y, x + side, y + side))
    arr = np.asarray(img, dtype=np.float64)
    if spec.flip and rng.random() < 0.5:
        arr = arr[:, ::-1]
    return arr


def good_image(category: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A defect-free image: random position, ±5 % scale, optional flip, ±3 % exposure."""
    arr = _crop(category, rng, size) * rng.uniform(0.97, 1.03)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- shapes


def _coverage(size: int, draw: Callable[[ImageDraw.ImageDraw, float], None]) -> np.ndarray:
    """Anti-aliased coverage (0..1, HxW) of what `draw` paints on a supersampled canvas."""
    canvas = Image.new("L", (size * _SS, size * _SS), 0)
    draw(ImageDraw.Draw(canvas), float(_SS))
    a = np.asarray(canvas, np.float64) / 255.0
    return a.reshape(size, _SS, size, _SS).mean(axis=(1, 3))


def _point(rng: np.random.Generator, size: int, margin: float) -> np.ndarray:
    return rng.uniform(margin, size - margin, 2)


def _clip_path(points: np.ndarray, size: int) -> np.ndarray:
    return np.clip(points, _MARGIN * size / 256, size - _MARGIN * size / 256)


def _smooth_path(rng: np.random.Generator, size: int, length: float, wiggle: float) -> np.ndarray:
    """A gently curving path: heading does a small random walk."""
    steps = 24
    p = _point(rng, size, size * 0.25)
    heading = rng.uniform(0, 2 * np.pi)
    pts = [p]
    for _ in range(steps):
        heading += rng.normal(0, wiggle)
        p = p + (length / steps) * np.array([np.cos(heading), np.sin(heading)])
        pts.append(p)
    return _clip_path(np.array(pts), size)


def _jagged_path(rng: np.random.Generator, start: np.ndarray, heading: float, length: float,
                 size: int) -> np.ndarray:
    """A crack-like path: short straight segments with sharp turns around a main heading."""
    pts = [start]
    p = start
    travelled = 0.0
    while travelled < length:
        step = rng.uniform(3, 8) * size / 256
        turn = heading + rng.normal(0, 0.6)
        p = p + step * np.array([np.cos(turn), np.sin(turn)])
        pts.append(p)
        travelled += step
    return _clip_path(np.array(pts), size)


def _polyline(points: np.ndarray, width: float) -> Callable[[ImageDraw.ImageDraw, float], None]:
    def draw(d: ImageDraw.ImageDraw, s: float) -> None:
        d.line([tuple(q * s) for q in points], fill=255, width=max(1, int(round(width * s))),
               joint="curve")
    return draw


def _blob(rng: np.random.Generator, size: int, radius: float, roughness: float) -> np.ndarray:
    """Soft irregular blob (0..1, HxW): an ellipse whose edge is pushed around by smooth noise."""
    cy, cx = _point(rng, size, _MARGIN * size / 256 + radius * 1.3)
    ry = radius * rng.uniform(0.6, 1.0)
    rx = radius * rng.uniform(0.6, 1.0)
    theta = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    r = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
    noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma=max(radius / 3, 1.0))
    noise /= max(np.abs(noise).max(), 1e-9)
    field = 1.0 - r + roughness * noise
    return np.clip(field / 0.25, 0.0, 1.0)  # a 0.25-wide soft edge


# ---------------------------------------------------------------------------- defects


def _scratch(base, rng, size):
    path = _smooth_path(rng, size, rng.uniform(60, 140) * size / 256, wiggle=0.08)
    alpha = _coverage(size, _polyline(path, rng.uniform(1.8, 3.2) * size / 256))
    alpha *= rng.uniform(0.65, 0.95)
    target = base + rng.choice([-1.0, 1.0]) * rng.uniform(55, 90)
    return alpha, target


def _crack(base, rng, size):
    start = _point(rng, size, size * 0.3)
    heading = rng.uniform(0, 2 * np.pi)
    main = _jagged_path(rng, start, heading, rng.uniform(55, 110) * size / 256, size)
    width = rng.uniform(1.6, 2.8) * size / 256
    strokes = [_polyline(main, width)]
    for _ in range(int(rng.integers(1, 3))):
        fork = main[int(rng.integers(len(main) // 4, len(main)))]
        branch = _jagged_path(rng, fork, heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1),
                              rng.uniform(12, 35) * size / 256, size)
        strokes.append(_polyline(branch, width * 0.7))
    alpha = _coverage(size, lambda d, s: [f(d, s) for f in strokes])
    target = base * rng.uniform(0.12, 0.35)
    return alpha, target


def _hole(base, rng, size):
    r = rng.uniform(7, 16) * size / 256
    cx, cy = _point(rng, size, _MARGIN * size / 256 + r * 1.5)
    rx, ry = r * rng.uniform(0.75, 1.25), r * rng.uniform(0.75, 1.25)
    alpha = _coverage(size, lambda d, s: d.ellipse(
        [(cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s], fill=255))
    # Darker towards the centre, as if looking into a bore.
    yy, xx = np.mgrid[0:size, 0:size]
    depth = np.clip(np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2), 0, 1)[..., None]
    target = base * (0.06 + 0.3 * depth)
    return alpha, target


def _stain(base, rng, size):
    alpha = _blob(rng, size, rng.uniform(16, 34) * size / 256, roughness=0.5)
    alpha *= rng.uniform(0.35, 0.6)
    tint = np.array([rng.uniform(0.45, 0.7), rng.uniform(0.38, 0.55), rng.uniform(0.25, 0.45)])
    target = base * tint
    return alpha, target


def _cut(base, rng, size, category):
    """Cut-paste: a patch of the same surface from elsewhere, rotated and rescaled, pasted in."""
    side = int(rng.uniform(28, 56) * size / 256)
    # A clearly different grain size and exposure: on isotropic surfaces (gravel) a rotated
    # patch at the same scale would be no defect at all.
    grain = rng.uniform(0.45, 0.7) if rng.random() < 0.5 else rng.uniform(1.5, 2.2)
    donor = _crop(category, rng, size, side_scale=grain)
    donor = np.rot90(donor, int(rng.integers(1, 4)))
    dy, dx = rng.integers(0, size - side, 2)
    patch = donor[dy:dy + side, dx:dx + side] * (rng.uniform(0.8, 0.9) if rng.random() < 0.5 else rng.uniform(1.1, 1.2))
    x0, y0 = (int(v) for v in _point(rng, size, _MARGIN * size / 256 + side / 2) - side / 2)
    alpha = np.zeros((size, size))
    target = base.copy()
    if rng.random() < 0.5:
        alpha[y0:y0 + side, x0:x0 + side] = 1.0
    else:
        yy, xx = np.mgrid[0:side, 0:side]
        c = (side - 1) / 2
        alpha[y0:y0 + side, x0:x0 + side] = (((yy - c) ** 2 + (xx - c) ** 2) <= (side / 2) ** 2)
    target[y0:y0 + side, x0:x0 + side] = patch
    return alpha, target


_SPOT_COLOURS = np.array([
    [200, 30, 30], [30, 60, 200], [40, 170, 60], [230, 200, 30], [140, 40, 170], [20, 20, 20],
], np.float64)


def _color_spot(base, rng, size):
    alpha = _blob(rng, size, rng.uniform(6, 12) * size / 256, roughness=0.25)
    alpha *= rng.uniform(0.55, 0.85)
    target = np.broadcast_to(_SPOT_COLOURS[rng.integers(len(_SPOT_COLOURS))], base.shape)
    return alpha, target


def add_defect(base: np.ndarray, defect: str, category: str,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paint one defect onto `base` (uint8 HxWx3); return (image, mask).

    The mask is exactly the set of pixels the defect was allowed to touch: every pixel
    outside it equals `base`.
    """
    size = base.shape[0]
    if base.shape != (size, size, 3) or base.dtype != np.uint8:
        raise ValueError(f"base must be a square uint8 RGB image, got {base.shape} {base.dtype}")
    b = base.astype(np.float64)
    if defect == "scratch":
        alpha, target = _scratch(b, rng, size)
    elif defect == "crack":
        alpha, target = _crack(b, rng, size)
    elif defect == "hole":
        alpha, target = _hole(b, rng, size)
    elif defect == "stain":
        alpha, target = _stain(b, rng, size)
    elif defect == "cut":
        alpha, target = _cut(b, rng, size, category)
    elif defect == "color_spot":
        alpha, target = _color_spot(b, rng, size)
    else:
        raise ValueError(f"unknown defect type {defect!r}; expected one of {DEFECT_TYPES}")
    alpha = np.where(alpha >= _MIN_ALPHA, alpha, 0.0)
    mask = alpha > 0
    a = alpha[..., None]
    out = np.clip(np.rint(b * (1 - a) + np.clip(target, 0, 255) * a), 0, 255).astype(np.uint8)
    out[~mask] = base[~mask]
    return out, mask


# ---------------------------------------------------------------------------- writing


def _rng(seed: int, category: str, split: str, kind: str, index: int) -> np.random.Generator:
    # crc32 of the names (not Python's salted hash) keeps the seeding stable across runs.
    key = [seed, zlib.crc32(category.encode()), zlib.crc32(split.encode()),
           zlib.crc32(kind.encode()), index]
    return np.random.default_rng(np.random.SeedSequence(key))


def _save_png(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG", optimize=False, compress_level=6)


def _defect_counts(test_defect: int) -> dict[str, int]:
    """Defective test images per type: they cycle through DEFECT_TYPES."""
    n = len(DEFECT_TYPES)
    return {d: (test_defect - i + n - 1) // n for i, d in enumerate(DEFECT_TYPES)}


def _category_meta(cat: str, train: int, test_good: int, test_defect: int) -> dict:
    spec = CATEGORIES[cat]
    return {"source": f"skimage.data.{spec.loader}() region {list(spec.region)}", "licence": spec.licence,
            "description": spec.description, "train": train, "test_good": test_good,
            "test_defect": {k: v for k, v in _defect_counts(test_defect).items() if v}}


def _check_target(root: Path, meta: dict) -> None:
    """Refuse a non-empty `root` unless it holds this very generation (see the module docstring)."""
    if not root.exists():
        return
    if not root.is_dir():
        raise ValueError(f"{root}: exists and is not a folder")
    entries = {p.name for p in root.iterdir() if not p.name.startswith(".")}
    if not entries:
        return
    try:
        earlier = json.loads((root / "benchmark.json").read_text())
    except (OSError, ValueError):
        earlier = None
    ours = set(meta["categories"]) | {"benchmark.json"}
    if earlier != json.loads(json.dumps(meta)) or not entries <= ours:
        raise ValueError(f"{root}: not empty, and not an identical earlier generation (same arguments, same "
                         f"benchmark.json, nothing else): its old files would mix into the new set; generate "
                         f"into a new or empty folder, or delete this one first")


def generate(out: str | Path, categories: Sequence[str] | None = None, *, train: int = 100,
             test_good: int = 16, test_defect: int = 24, size: int = 256, seed: int = 0,
             progress: bool = False) -> dict:
    """Write the benchmark under `out`; return the metadata also written to benchmark.json.

    Defective test images cycle through DEFECT_TYPES, so `test_defect` = 24 gives 4 of each.
    `out` must be new, empty or an identical earlier generation (ValueError otherwise).
    """
    cats = list(CATEGORIES) if categories is None else list(categories)
    unknown = [c for c in cats if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown categories {unknown}; available: {sorted(CATEGORIES)}")
    if not cats:
        raise ValueError("no categories given")
    if min(train, test_good, test_defect) < 0:
        raise ValueError("image counts must be >= 0")
    if size < 64:
        raise ValueError(f"size must be >= 64, got {size}")
    root = Path(out)
    import skimage

    meta: dict = {
        "name": DATASET_NAME,
        "generator": f"moead_edge.data.synth v{GENERATOR_VERSION}",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "size": size,
        "source": f"scikit-image {skimage.__version__} sample photographs + synthetic defects",
        "categories": {cat: _category_meta(cat, train, test_good, test_defect) for cat in cats},
    }
    _check_target(root, meta)
    for cat in cats:
        base = root / cat
        for i in range(train):
            _save_png(good_image(cat, _rng(seed, cat, "train", "good", i), size),
                      base / "train" / "good" / f"{i:03d}.png")
        for i in range(test_good):
            _save_png(good_image(cat, _rng(seed, cat, "test", "good", i), size),
                      base / "test" / "good" / f"{i:03d}.png")
        for i in range(test_defect):
            defect = DEFECT_TYPES[i % len(DEFECT_TYPES)]
            n = i // len(DEFECT_TYPES)  # this image's index among its type's
            rng = _rng(seed, cat, "test", defect, n)
            img, mask = add_defect(good_image(cat, rng, size), defect, cat, rng)
            _save_png(img, base / "test" / defect / f"{n:03d}.png")
            _save_png(mask.astype(np.uint8) * 255, base / "ground_truth" / defect / f"{n:03d}_mask.png")
        if progress:
            print(f"synth: {cat}: {train} train, {test_good} good + {test_defect} defective test",
                  file=sys.stderr, flush=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / "benchmark.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m moead_edge.data.synth", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (MVTec-AD layout)")
    p.add_argument("--categories", default="all",
                   help=f"comma-separated subset of {','.join(CATEGORIES)} or 'all'")
    p.add_argument("--train", type=int, default=100, help="good training images per category")
    p.add_argument("--test-good", type=int, default=16, help="good test images per category")
    p.add_argument("--test-defect", type=int, default=24, help="defective test images per category")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    cats = None if a.categories == "all" else [c.strip() for c in a.categories.split(",") if c.strip()]
    try:
        generate(a.out, cats, train=a.train, test_good=a.test_good, test_defect=a.test_defect,
                 size=a.size, seed=a.seed, progress=True)
    except ValueError as e:
        print(f"synth: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
