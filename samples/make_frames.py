"""Regenerates samples/frames/ and samples/masks/: good and defective test images of the benchmark.

    training/.venv/bin/python samples/make_frames.py          # rewrite samples/frames/ and masks/
    training/.venv/bin/python samples/make_frames.py --check  # exit 1 if they differ

The images are byte-identical copies of test images of the default generated benchmark
(`python -m moead_edge.data.synth --seed 0 --size 256`), so a model trained on that
benchmark never saw them during training. masks/ holds the exact defect mask of each
defective one (the benchmark's ground truth), which tests compare the reported regions with.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "training"))

from moead_edge.data import synth  # noqa: E402

SEED = 0
SIZE = 256
# (category, defect or "good", index): the shipped bundle's categories, a good image of each
# (two of wood), and every defect type at least once.
PICKS = [
    ("brick", "good", 0), ("matte", "good", 0), ("wood", "good", 0), ("wood", "good", 1),
    ("brick", "scratch", 0), ("brick", "stain", 0), ("brick", "hole", 0), ("matte", "crack", 0),
    ("matte", "color_spot", 0), ("wood", "cut", 0), ("wood", "stain", 0), ("wood", "crack", 0),
]


def build(dest: Path, masks: Path) -> None:
    cats = sorted({c for c, _, _ in PICKS})
    defects_needed = max(i for _, d, i in PICKS if d != "good") + 1
    with tempfile.TemporaryDirectory() as tmp:
        synth.generate(tmp, cats, train=0, test_good=1 + max(i for _, d, i in PICKS if d == "good"),
                       test_defect=len(synth.DEFECT_TYPES) * defects_needed, size=SIZE, seed=SEED)
        dest.mkdir(parents=True, exist_ok=True)
        masks.mkdir(parents=True, exist_ok=True)
        for cat, kind, i in PICKS:
            shutil.copyfile(Path(tmp) / cat / "test" / kind / f"{i:03d}.png", dest / f"{cat}_{kind}_{i:03d}.png")
            if kind != "good":
                shutil.copyfile(Path(tmp) / cat / "ground_truth" / kind / f"{i:03d}_mask.png", masks / f"{cat}_{kind}_{i:03d}_mask.png")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare with samples/frames/ instead of writing")
    args = p.parse_args()
    frames, masks = HERE / "frames", HERE / "masks"
    if not args.check:
        for old in [*frames.glob("*.png"), *masks.glob("*.png")]:
            old.unlink()
        build(frames, masks)
        print(f"wrote {len(PICKS)} frames to {frames} and their masks to {masks}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp) / "frames", Path(tmp) / "masks")
        for name, have_dir in (("frames", frames), ("masks", masks)):
            want = {p.name: p.read_bytes() for p in (Path(tmp) / name).glob("*.png")}
            have = {p.name: p.read_bytes() for p in have_dir.glob("*.png")}
            if want != have:
                print(f"samples/{name}/ differs from a fresh build: {sorted(set(want) ^ set(have)) or 'content'}")
                return 1
    print("samples/frames/ and samples/masks/ are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
