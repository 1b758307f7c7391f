"""`python -m moead_edge <command>`: train -> export -> quantize -> evaluate -> package, or one step.

    train     --data DIR --out BUNDLE_DIR [--config edge|paper|tiny|FILE.yaml] [--categories a,b]
              [--epochs N] [--name NAME] [--version X.Y.Z] [--work DIR] [--no-resume]
              [--activations u8|s8] [--weight-bits 8|7]
    fit       --data DIR --work DIR [--config ...] [--categories a,b] [--epochs N] [--no-resume]
    export    --work DIR
    quantize  --work DIR [--activations u8|s8] [--weight-bits 8|7]
    evaluate  --work DIR
    package   --work DIR --out BUNDLE_DIR [--name NAME] [--version X.Y.Z]
    profile   --bundle BUNDLE_DIR [--threads N] [--runs N] [--warmup N] [--by op,part,region] [--json]

Bad input (missing folder, no images, unreadable files, wrong layout, bad config) prints one
line naming the path and exits with status 2.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


WEIGHT_BITS_HELP = ("8 (default): full int8 weights; 7: weights within +-64, so that x86 CPUs without VNNI "
                    "(whose 8-bit products saturate in 16 bits) score as every other CPU does (docs/toolchain.md)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="moead_edge", description="MoEAD toolchain: train, export, quantize, "
                                "evaluate and package anomaly-detection model bundles.")
    sub = p.add_subparsers(dest="command", required=True)

    def data_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data", required=True, type=Path, help="MVTec-AD layout folder (one category or several)")
        sp.add_argument("--config", default="edge", help="edge, paper, tiny or a YAML file (default edge)")
        sp.add_argument("--categories", help="comma-separated categories to use (default all)")
        sp.add_argument("--epochs", type=int, help="override the config's epochs")
        sp.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")

    def bundle_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", required=True, type=Path, help="bundle folder to write")
        sp.add_argument("--name", help="bundle name (default: the --out folder's name)")
        sp.add_argument("--version", default="1.0.0", help="bundle version (semver, default 1.0.0)")

    t = sub.add_parser("train", help="all steps: fit, export, quantize, evaluate, package")
    data_args(t)
    bundle_args(t)
    t.add_argument("--work", type=Path, help="work folder for caches/checkpoints (default: <out>.work)")
    t.add_argument("--activations", choices=["u8", "s8"], default="u8", help="INT8 activation type (default u8)")
    t.add_argument("--weight-bits", type=int, choices=[8, 7], default=8, help=WEIGHT_BITS_HELP)
    f = sub.add_parser("fit", help="train the model (features cached, checkpoints, resume)")
    data_args(f)
    f.add_argument("--work", type=Path, required=True)
    e = sub.add_parser("export", help="export model.pt to ONNX (parity-checked)")
    e.add_argument("--work", type=Path, required=True)
    q = sub.add_parser("quantize", help="static INT8 Q/DQ quantization")
    q.add_argument("--work", type=Path, required=True)
    q.add_argument("--activations", choices=["u8", "s8"], default="u8")
    q.add_argument("--weight-bits", type=int, choices=[8, 7], default=8, help=WEIGHT_BITS_HELP)
    ev = sub.add_parser("evaluate", help="metrics, threshold, speed and report")
    ev.add_argument("--work", type=Path, required=True)
    ev.add_argument("--quiet", action="store_true")
    pk = sub.add_parser("package", help="write the bundle folder")
    pk.add_argument("--work", type=Path, required=True)
    bundle_args(pk)
    pr = sub.add_parser("profile", help="onnxruntime's kernel times of a bundle's INT8 and FP32 graphs, "
                        "by op type, part and region")
    pr.add_argument("--bundle", required=True, type=Path, help="bundle folder (model.onnx and/or model-fp32.onnx)")
    pr.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    pr.add_argument("--runs", type=int, default=100, help="measured runs per model (default 100)")
    pr.add_argument("--warmup", type=int, default=20, help="warm-up runs per model (default 20)")
    pr.add_argument("--by", default="op,part", help="comma-separated tables: op, part, region (default op,part)")
    pr.add_argument("--json", action="store_true", help="print the whole profile as JSON instead of tables")
    return p


def _bundle_name(args: argparse.Namespace) -> str:
    name = args.name or re.sub(r"[^a-z0-9._-]+", "-", args.out.resolve().name.lower()).strip("-._") or "moead"
    return name


def _categories(args: argparse.Namespace) -> list[str] | None:
    if not getattr(args, "categories", None):
        return None
    return [c.strip() for c in args.categories.split(",") if c.strip()]


def run(args: argparse.Namespace) -> None:
    from .train import steps

    def say(msg: str) -> None:
        print(msg, flush=True)

    cmd = args.command
    if cmd in ("train", "fit"):
        if not args.data.exists():
            raise _bad(f"{args.data}: dataset folder does not exist")
        work = args.work or args.out.with_name(args.out.name + ".work")
        if args.epochs is not None and args.epochs < 1:
            raise _bad(f"--epochs: must be >= 1, got {args.epochs}")
        steps.fit(args.data, work, args.config, _categories(args), args.epochs, not args.no_resume, say,
                  progress=not args.quiet)
        if cmd == "fit":
            return
        steps.export(work, say)
        steps.quantize(work, args.activations, say, weight_bits=args.weight_bits)
        steps.evaluate(work, say, progress=not args.quiet)
        steps.package(work, args.out, _bundle_name(args), args.version, say)
    elif cmd == "export":
        steps.export(args.work, say)
    elif cmd == "quantize":
        steps.quantize(args.work, args.activations, say, weight_bits=args.weight_bits)
    elif cmd == "evaluate":
        steps.evaluate(args.work, say, progress=not args.quiet)
    elif cmd == "package":
        steps.package(args.work, args.out, _bundle_name(args), args.version, say)
    elif cmd == "profile":
        _profile(args)


def _profile(args: argparse.Namespace) -> None:
    """Checks the arguments and the bundle before onnxruntime is loaded and any model is
    opened, so bad input fails at once with the usual one-line error (torch is loaded by then:
    main() imports the other commands' error classes)."""
    import json

    from .eval import profile

    for name in ("threads", "runs"):
        if getattr(args, name) < 1:
            raise _bad(f"--{name}: must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise _bad(f"--warmup: must be >= 0, got {args.warmup}")
    groupings = [g.strip() for g in args.by.split(",") if g.strip()]
    unknown = [g for g in groupings if g not in profile.GROUPINGS]
    if unknown or not groupings:
        raise _bad(f"--by: {args.by!r}: choose from {', '.join(profile.GROUPINGS)}")
    profile.bundle_models(args.bundle)
    result = profile.profile_bundle(args.bundle, args.threads, args.runs, args.warmup)
    print(json.dumps(result, indent=2) if args.json else profile.format_report(result, groupings))


class _BadInput(Exception):
    pass


def _bad(msg: str) -> _BadInput:
    return _BadInput(msg)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .backbones.nsfwjs import ConversionError
    from .bundle.manifest import ManifestError
    from .bundle.writer import BundleError
    from .data.images import DataError
    from .eval.profile import ProfileError
    from .model.config import ConfigError

    try:
        run(args)
    except (_BadInput, DataError, ConfigError, BundleError, ManifestError, ConversionError, ProfileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted (a checkpoint is kept: run the same command again to resume)", file=sys.stderr)
        return 130
    return 0
