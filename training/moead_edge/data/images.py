"""Image and mask loading for the model, without torch (the bundle tools use it too).

Re-exported by data.mvtec, whose docstring lists the API. Preprocessing follows the
reference (MoEAD/UniAD): PIL RGB, exact-size bilinear resize (aspect ratio not kept; PIL
anti-aliases when shrinking), masks resized NEAREST; normalization as the manifest's
`input` section says: pixel' = (pixel * scale - mean[c]) / std[c], c indexing the tensor's
channels in `color` order (as src/preprocess does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError


class DataError(ValueError):
    """A dataset folder or file that cannot be used; the message names the path."""


# What Pillow raises for a file it cannot use. DecompressionBombError (an image over twice
# Image.MAX_IMAGE_PIXELS, about 179 megapixels) derives from Exception only: without it here a
# huge image stopped training with a traceback that named neither the file nor the limit.
UNREADABLE_IMAGE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def spec_field(spec: Mapping[str, Any], key: str) -> Any:
    if key not in spec:
        raise KeyError(f"input spec: missing field {key!r}")
    return spec[key]


def _eight_bit(im: Image.Image) -> Image.Image:
    """16-bit greyscale (Pillow modes I;16*, and I, which it uses for some 16-bit files)
    scaled to 8 bits: convert("RGB") clips such values at 255 instead of scaling them, so all
    but the darkest 1/256 of the range came out white. Values of I beyond 16 bits are clipped."""
    if not (im.mode == "I" or im.mode.startswith("I;16")):
        return im
    wide = np.clip(np.asarray(im, dtype=np.int64), 0, 65535)
    return Image.fromarray(np.rint(wide / 257).astype(np.uint8), "L")  # 257 = 65535 / 255


def load_rgb(path: str | Path) -> np.ndarray:
    """The image at `path` as uint8 HxWx3 RGB (greyscale, palette and alpha are converted;
    16-bit greyscale is scaled to 8 bits)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            return np.asarray(_eight_bit(im).convert("RGB"))
    except FileNotFoundError as e:
        raise DataError(f"{path}: image file does not exist") from e
    except UNREADABLE_IMAGE as e:
        raise DataError(f"{path}: unreadable image ({e})") from e


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Exact-size bilinear resize as the reference transform does (PIL, antialiased shrink)."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))


def normalize(rgb: np.ndarray, input_spec: Mapping[str, Any]) -> np.ndarray:
    """uint8 HxWx3 RGB → float32 3xHxW in the spec's channel order and normalization."""
    color = spec_field(input_spec, "color")
    if color not in ("RGB", "BGR"):
        raise ValueError(f"input spec: color must be RGB or BGR, got {color!r}")
    scale = float(spec_field(input_spec, "scale"))
    # float64 arithmetic then one rounding to float32, as the daemon does (JavaScript numbers
    # are doubles): INT8 models move visibly on a one-ulp input difference.
    mean = np.asarray(spec_field(input_spec, "mean"), np.float64).reshape(3, 1, 1)
    std = np.asarray(spec_field(input_spec, "std"), np.float64).reshape(3, 1, 1)
    chw = rgb.transpose(2, 0, 1).astype(np.float64)
    if color == "BGR":
        chw = chw[::-1]
    return np.ascontiguousarray((chw * scale - mean) / std, dtype=np.float32)


def load_image_for_model(path: str | Path, input_spec: Mapping[str, Any]) -> np.ndarray:
    """The model input for one image file: float32 3xHxW (add a batch axis yourself)."""
    rgb = resize_rgb(load_rgb(path), int(spec_field(input_spec, "width")),
                     int(spec_field(input_spec, "height")))
    return normalize(rgb, input_spec)


def load_mask(mask: Any, width: int, height: int) -> np.ndarray:
    """Ground truth as uint8 HxW in {0, 1} at (width, height); all zeros for good images.

    `mask` is a path, None (a good image) or a data.mvtec.Sample. Every non-zero pixel is a
    defect: MVTec's masks are 0/255, but masks saved as 0/1 (or as palette index 1) are
    common, and a threshold at 127 read them as defect-free.
    """
    if hasattr(mask, "mask_path"):
        mask = mask.mask_path
    if mask is None:
        return np.zeros((height, width), np.uint8)
    path = Path(mask)
    try:
        with Image.open(path) as im:
            m = im.convert("L")
            if m.size != (width, height):
                m = m.resize((width, height), Image.Resampling.NEAREST)
            return (np.asarray(m) > 0).astype(np.uint8)
    except FileNotFoundError as e:
        raise DataError(f"{path}: mask file does not exist") from e
    except UNREADABLE_IMAGE as e:
        raise DataError(f"{path}: unreadable mask ({e})") from e
