"""samples/frames/ and samples/masks/ must be what samples/make_frames.py builds from the current generator."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_sample_frames_and_masks_are_current(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_frames", SAMPLES / "make_frames.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.build(tmp_path / "frames", tmp_path / "masks")
    for name, count in (("frames", 12), ("masks", 8)):
        want = {p.name: p.read_bytes() for p in (tmp_path / name).glob("*.png")}
        have = {p.name: p.read_bytes() for p in (SAMPLES / name).glob("*.png")}
        assert sorted(have) == sorted(want) and len(want) == count, name
        stale = [n for n in want if want[n] != have[n]]
        assert not stale, f"run `training/.venv/bin/python samples/make_frames.py`; stale in {name}: {stale}"
