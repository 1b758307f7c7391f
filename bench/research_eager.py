"""The research-code baseline for `npm run bench`: a bundle's PyTorch checkpoint scored the way
the paper's code runs it (eager FP32 PyTorch, one image at a time), with the toolchain's own
image loading and post-processing. Prints one JSON object on stdout.

Run from the repository root:
  PYTHONPATH=training training/.venv/bin/python bench/research_eager.py \
      --checkpoint BUNDLE/checkpoint.pt --manifest BUNDLE/manifest.json --threads 2 --seconds 20 IMAGE...
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

from moead_edge.data.images import load_image_for_model
from moead_edge.eval.postprocess import postprocess
from moead_edge.model import MoEAD
from moead_edge.train.trainer import load_model


def load_checkpoint(path: Path) -> MoEAD:
    """A toolchain model file ({config, reconstruction, ...}: model.pt or a training checkpoint),
    loaded by the toolchain's load_model (the frozen backbone is rebuilt from the config)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    missing = [k for k in ("config", "reconstruction") if k not in state]
    if missing:
        raise SystemExit(f"{path}: not a moead_edge model file (no {', '.join(missing)})")
    return load_model(path)[0]


def peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("images", nargs="+", type=Path)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    manifest = json.loads(args.manifest.read_text())
    model = load_checkpoint(args.checkpoint)
    loaded_rss = peak_rss_mb()

    def score(path: Path) -> float:
        x = torch.from_numpy(load_image_for_model(path, manifest["input"]))[None]
        with torch.no_grad():
            maps = model(x)
        _, scores = postprocess(maps.numpy(), manifest["postprocess"])
        return float(scores[0])

    for i in range(args.warmup):
        score(args.images[i % len(args.images)])
    frames, started = 0, time.perf_counter()
    per_frame: list[float] = []
    while time.perf_counter() - started < args.seconds:
        t0 = time.perf_counter()
        score(args.images[frames % len(args.images)])
        per_frame.append((time.perf_counter() - t0) * 1000)
        frames += 1
    elapsed = time.perf_counter() - started
    per_frame.sort()
    json.dump({
        "fps": frames / elapsed,
        "frames": frames,
        "seconds": elapsed,
        "median_ms": per_frame[len(per_frame) // 2],
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_load_mb": loaded_rss,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
