"""Fetch nsfwjs@4.4.0 (npm pack), check its integrity, convert its ImageNet MobileNetV2 layers
(Conv1..block_10) to a PyTorch state dict in training/.cache, and print the provenance.

    cd training && .venv/bin/python scripts/convert_nsfwjs_mobilenet_v2.py [--force]

The toolchain runs the same conversion by itself the first time the backbone is needed.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moead_edge.backbones import nsfwjs  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--force", action="store_true", help="convert again even if the cache exists")
    a = p.parse_args()
    cached = nsfwjs.CACHE_DIR / nsfwjs.CONVERTED
    if a.force and cached.exists():
        cached.unlink()
    try:
        state = nsfwjs.converted_weights()
    except nsfwjs.ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{cached}: {len(state)} tensors, {sum(v.numel() for v in state.values()):,} values")
    print(json.dumps(asdict(nsfwjs.provenance()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
