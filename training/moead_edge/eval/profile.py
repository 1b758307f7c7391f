"""Where a bundle's CPU time goes: onnxruntime's own profiler over model.onnx (INT8) and
model-fp32.onnx (FP32), summed per op type, per part of the model and per module region.

docs/bench.md explains why INT8 runs well short of 2x FP32 on CPU from exactly these
breakdowns; this module is what `python -m moead_edge profile` runs, so the analysis can be
repeated on any bundle instead of with throwaway scripts.

Sessions are set up as the daemon sets them (src/inference/onnxruntime-options.ts): all graph
optimizations, the given intra-op threads without spinning, sequential execution and
subnormal floats flushed to zero, on onnxruntime's pool threads and on the calling thread.
Kernel times come from onnxruntime's profiler, which adds a few microseconds to every node;
the model is therefore also timed unprofiled, and both figures are reported.
"""
from __future__ import annotations

import json
import re
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

# The bundle's two graphs (docs/toolchain.md, `package`), in the order they are profiled.
MODEL_FILES = (("model.onnx", "INT8"), ("model-fp32.onnx", "FP32"))
PARTS = ("moe", "attention", "backbone", "layernorm", "rest")
GROUPINGS = ("op", "part", "region")
KERNEL_SUFFIX = "_kernel_time"


class ProfileError(ValueError):
    """A bundle that cannot be profiled; the message names the path."""


@dataclass
class Row:
    """One line of a breakdown: kernel microseconds per run and the nodes that take them."""

    us: float = 0.0
    nodes: int = 0


@dataclass
class ModelProfile:
    """The profile of one graph of the bundle, every figure per run."""

    file: str
    precision: str
    runs: int
    nodes: int
    kernel_us: float
    profiled_run_us: float
    unprofiled_run_us: float
    by_op: dict[str, Row] = field(default_factory=dict)
    by_part: dict[str, Row] = field(default_factory=dict)
    by_region: dict[str, Row] = field(default_factory=dict)

    @property
    def overhead_per_node_us(self) -> float:
        """What profiling adds to a run, spread over its nodes: the profiler's timestamps and
        event records cost about the same for every node, so a Reshape that takes 0.3 us
        unprofiled reads several us in the profile, and the graph with more small nodes (INT8)
        is inflated more."""
        return (self.profiled_run_us - self.unprofiled_run_us) / self.nodes


def bundle_models(bundle: Path) -> list[tuple[Path, str]]:
    """The bundle's graphs that exist, with their precision; a missing folder or a folder
    with neither graph is refused up front, before onnxruntime is loaded."""
    if not bundle.is_dir():
        raise ProfileError(f"{bundle}: bundle folder does not exist")
    found = [(bundle / name, precision) for name, precision in MODEL_FILES if (bundle / name).is_file()]
    if not found:
        names = " nor ".join(str(bundle / name) for name, _ in MODEL_FILES)
        raise ProfileError(f"{bundle}: no model to profile (neither {names} exists)")
    return found


def _session(path: Path, threads: int, profile_dir: Path | None):
    """A CPU session with the daemon's options, profiling into `profile_dir` when given.
    onnxruntime's set_denormal_as_zero covers its pool threads, and the calling thread only
    for a process's first session, so this thread is switched by torch (the same MXCSR bits):
    the masked attention produces subnormals that cost Intel cores a microcode assist each."""
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    if profile_dir is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_dir / path.stem)
    torch.set_flush_denormal(True)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _feed(session, path: Path) -> dict[str, np.ndarray]:
    """A seeded batch-1 input in [0, 1), the range of the bundles' normalized images (scale
    1/256, mean 0, std 1); dynamic axes get 1. The same values for both graphs."""
    kinds = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
    rng = np.random.default_rng(0)
    feed = {}
    for inp in session.get_inputs():
        if inp.type not in kinds:
            raise ProfileError(f"{path}: input {inp.name!r} is {inp.type}; only float inputs can be profiled")
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        feed[inp.name] = rng.random(shape).astype(kinds[inp.type])
    return feed


def _unprofiled_run_us(path: Path, threads: int, warmup: int, runs: int) -> float:
    """Median wall time of a run without the profiler, what the daemon's session would take."""
    session = _session(path, threads, None)
    feed = _feed(session, path)
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def _profile_events(path: Path, threads: int, warmup: int, runs: int, tmp: Path) -> list[dict]:
    """onnxruntime's trace events of warmup + runs runs; the JSON file is read and deleted."""
    session = _session(path, threads, tmp)
    feed = _feed(session, path)
    for _ in range(warmup + runs):
        session.run(None, feed)
    trace = Path(session.end_profiling())
    try:
        return json.loads(trace.read_text())
    finally:
        trace.unlink(missing_ok=True)


def _measured(path: Path, events: list[dict], warmup: int, runs: int) -> tuple[list[dict], list[float]]:
    """The kernel events and model_run durations of the runs after the warm-up. Runs are told
    apart by their model_run events' start times; a profile that lost events (onnxruntime caps
    how many it keeps) is refused rather than averaged over the wrong count."""
    model_runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                        key=lambda e: e["ts"])
    if len(model_runs) != warmup + runs:
        raise ProfileError(f"{path}: the profile holds {len(model_runs)} runs, not {warmup + runs}: use fewer --runs")
    measured = model_runs[warmup:]
    cut = measured[0]["ts"]
    kernels = sorted((e for e in events if e.get("cat") == "Node" and e["name"].endswith(KERNEL_SUFFIX)
                      and e["ts"] >= cut), key=lambda e: e["ts"])
    return kernels, [float(e["dur"]) for e in measured]


def module_path(node: str) -> list[str] | None:
    """The module path in a node name of the optimized graph, or None for a node without one.
    The exporter names nodes /backbone/blocks.3/expand/conv/Conv; onnxruntime keeps that name
    for a kernel it picks (…_nchwc, …_QuantizeLinear) and writes "fused <name>" for a fusion.
    A node made from an initializer (a bias DequantizeLinear that was not folded) carries the
    parameter's dotted name, backbone.blocks.6.project.conv.bias_DequantizeLinear. The layout
    nodes onnxruntime inserts (ReorderOutput, Transpose, Transpose_token_N) have no path."""
    name = node.removeprefix("fused ")
    if name.startswith("/"):
        return name.strip("/").split("/")
    head = name.split("/", 1)[0]
    if re.match(r"^[a-z_]+\.[a-z_]", head):
        # Dots between module names become path separators; a dot before an index
        # (blocks.6, norms.5) stays, as the exporter's paths keep it.
        return re.sub(r"\.(?!\d)", "/", head).split("/")
    return None


def part_of(node: str, previous: str) -> str:
    """The part of MoEAD a node belongs to, read from its module path (/backbone/...,
    /reconstruction/moe1_2/..., /reconstruction/attn_prev_3/..., /reconstruction/norms.5/...).
    A node without a path is one of onnxruntime's layout conversions of the output of the
    node run just before it, so it joins that node's part: in the shipped graphs these are
    the backbone's NCHWc/NHWC hand-overs, the float stem's included. Everything else (neck,
    positional embedding, input and output projections, residual adds and their
    QuantizeLinear, the distance head) is `rest`."""
    segments = module_path(node)
    if segments is None:
        return previous
    modules = segments[:-1]
    if any(s.startswith("moe") for s in modules):
        return "moe"
    if any(s.startswith("attn_") for s in modules):
        return "attention"
    if segments[0] == "backbone":
        return "backbone"
    if any(s.startswith("norms.") for s in modules):
        return "layernorm"
    return "rest"


def region_of(node: str, previous: str) -> str:
    """A finer grouping by module path: each backbone block, the neck, each kind of
    reconstruction module with its round suffix dropped (attn_prev_2 -> attn_prev, norms.5 ->
    norms), the reconstruction's own nodes, and the top level (the distance head). Nodes
    without a path join the region of the node before them, as in `part_of`."""
    segments = module_path(node)
    if segments is None:
        return previous
    if len(segments) == 1:
        return "(top level)"
    if segments[0] == "backbone":
        return f"backbone/{segments[1]}"
    if segments[0] == "reconstruction":
        if len(segments) == 2:
            return "reconstruction (own nodes)"
        return "reconstruction/" + re.sub(r"([._]\d+)+$", "", segments[1])
    return segments[0]


def _classify(kernels: Iterable[dict]) -> tuple[dict[str, str], dict[str, str]]:
    """Part and region of every node name, walked in execution order so that a layout node
    can take its predecessor's."""
    parts: dict[str, str] = {}
    regions: dict[str, str] = {}
    part, region = "rest", "(top level)"
    for e in kernels:
        node = e["name"][:-len(KERNEL_SUFFIX)]
        if node not in parts:
            parts[node] = part_of(node, part)
            regions[node] = region_of(node, region)
        part, region = parts[node], regions[node]
    return parts, regions


def _node_times(kernels: list[dict]) -> tuple[dict[str, float], dict[str, str]]:
    """Each node's median kernel time over the measured runs, and its op type. The median,
    not the mean: on a shared machine one preempted run adds milliseconds to whichever node
    it hit, and a mean over 100 runs still shows that as a slow block."""
    durations: dict[str, list[float]] = defaultdict(list)
    ops: dict[str, str] = {}
    for e in kernels:
        node = e["name"][:-len(KERNEL_SUFFIX)]
        durations[node].append(float(e["dur"]))
        ops[node] = e["args"]["op_name"]
    return {node: float(np.median(d)) for node, d in durations.items()}, ops


def _rows(times: dict[str, float], group: dict[str, str]) -> dict[str, Row]:
    """Kernel time and node count per group, largest first."""
    rows: dict[str, Row] = defaultdict(Row)
    for node, us in times.items():
        rows[group[node]].us += us
        rows[group[node]].nodes += 1
    return dict(sorted(rows.items(), key=lambda kv: -kv[1].us))


def profile_model(path: Path, precision: str, threads: int = 1, runs: int = 100, warmup: int = 20) -> ModelProfile:
    """Profile one graph: timed unprofiled first, then profiled, each after its own warm-up.
    Every figure is a median over the measured runs (per node for kernel times), so that the
    breakdowns add up to the total exactly."""
    unprofiled = _unprofiled_run_us(path, threads, warmup, runs)
    with tempfile.TemporaryDirectory(prefix="moead-profile-") as tmp:
        events = _profile_events(path, threads, warmup, runs, Path(tmp))
    kernels, run_us = _measured(path, events, warmup, runs)
    times, ops = _node_times(kernels)
    if len(kernels) != len(times) * runs:
        raise ProfileError(f"{path}: the profile lost kernel events ({len(kernels)} for {runs} runs of "
                           f"{len(times)} nodes): use fewer --runs")
    parts, regions = _classify(kernels)
    by_part = _rows(times, parts)
    return ModelProfile(
        file=path.name, precision=precision, runs=runs, nodes=len(times), kernel_us=sum(times.values()),
        profiled_run_us=float(np.median(run_us)), unprofiled_run_us=unprofiled, by_op=_rows(times, ops),
        by_part={p: by_part.get(p, Row()) for p in PARTS}, by_region=_rows(times, regions))


def profile_bundle(bundle: Path, threads: int = 1, runs: int = 100, warmup: int = 20) -> dict:
    """Profiles of the bundle's graphs, and FP32/INT8 per part when it has both."""
    import onnxruntime as ort

    models = [profile_model(path, precision, threads, runs, warmup) for path, precision in bundle_models(bundle)]
    result: dict = {"bundle": str(bundle), "onnxruntime": ort.__version__, "threads": threads, "runs": runs,
                    "warmup": warmup, "models": [_model_json(m) for m in models]}
    by = {m.precision: m for m in models}
    if "INT8" in by and "FP32" in by:
        result["speedup"] = _speedups(by["INT8"], by["FP32"])
    return result


def _speedups(int8: ModelProfile, fp32: ModelProfile) -> dict[str, float | None]:
    """FP32 time over INT8 time (INT8's speed-up, as docs/bench.md's ratio columns read) for
    each part, the whole profiled kernel time and the unprofiled run."""
    def ratio(f: float, q: float) -> float | None:
        return round(f / q, 3) if q > 0 else None

    out = {p: ratio(fp32.by_part[p].us, int8.by_part[p].us) for p in PARTS}
    out["kernels (profiled)"] = ratio(fp32.kernel_us, int8.kernel_us)
    out["run (unprofiled)"] = ratio(fp32.unprofiled_run_us, int8.unprofiled_run_us)
    return out


def _model_json(m: ModelProfile) -> dict:
    def rows(d: dict[str, Row]) -> dict[str, dict[str, float]]:
        return {k: {"us": round(r.us, 2), "nodes": r.nodes} for k, r in d.items()}

    data = asdict(m)
    for k in ("kernel_us", "profiled_run_us", "unprofiled_run_us"):
        data[k] = round(data[k], 2)
    data.update(by_op=rows(m.by_op), by_part=rows(m.by_part), by_region=rows(m.by_region),
                overhead_per_node_us=round(m.overhead_per_node_us, 3))
    return data


def format_report(result: dict, groupings: Iterable[str] = ("op", "part")) -> str:
    """The profile as text tables: per model its totals, the profiler's overhead and the
    chosen breakdowns, then FP32/INT8 per part when both graphs were profiled."""
    lines = [f"{result['bundle']}: onnxruntime {result['onnxruntime']} CPU, {result['threads']} intra-op "
             f"thread(s), sequential, subnormals flushed; {result['warmup']} warm-up + {result['runs']} "
             f"measured runs per model, batch 1; "
             f"medians (per node for kernel times)"]
    for m in result["models"]:
        lines += ["", f"{m['file']} ({m['precision']}): {m['kernel_us']:.0f} us of kernel time per run, "
                      f"{m['nodes']} nodes"]
        lines.append(f"  profiler overhead: unprofiled run {m['unprofiled_run_us']:.0f} us, profiled run "
                     f"{m['profiled_run_us']:.0f} us (medians), so about {m['overhead_per_node_us']:.2f} us per node; "
                     f"small nodes read high")
        for g in groupings:
            title = {"op": "op type", "part": "part", "region": "region"}[g]
            lines += _table(title, m[f"by_{g}"], m["kernel_us"])
    if "speedup" in result:
        lines += ["", _speedup_table(result)]
    lines += ["", "Kernel times are onnxruntime's profile: every node reads a few us more than it takes "
              "unprofiled (the overhead line above), so parts and graphs with many small nodes look slower "
              "than they run."]
    return "\n".join(lines)


def _table(title: str, rows: dict[str, dict[str, float]], total: float) -> list[str]:
    width = max([len(title)] + [len(k) for k in rows])
    out = [f"  {title:<{width}}  {'us/run':>9}  {'share':>6}  {'nodes':>6}"]
    for k, r in rows.items():
        share = r["us"] / total * 100 if total else 0.0
        out.append(f"  {k:<{width}}  {r['us']:>9.1f}  {share:>5.1f}%  {r['nodes']:>6.0f}")
    return out


def _speedup_table(result: dict) -> str:
    by = {m["precision"]: m for m in result["models"]}
    q, f = by["INT8"], by["FP32"]
    width = max(len(p) for p in result["speedup"])
    lines = [f"{'part':<{width}}  {'INT8 us':>9}  {'FP32 us':>9}  FP32/INT8"]
    for p in PARTS:
        lines.append(_speedup_line(p, q["by_part"][p]["us"], f["by_part"][p]["us"], result["speedup"][p], width))
    lines.append(_speedup_line("kernels (profiled)", q["kernel_us"], f["kernel_us"],
                               result["speedup"]["kernels (profiled)"], width))
    lines.append(_speedup_line("run (unprofiled)", q["unprofiled_run_us"], f["unprofiled_run_us"],
                               result["speedup"]["run (unprofiled)"], width))
    return "\n".join(lines)


def _speedup_line(label: str, q: float, f: float, ratio: float | None, width: int) -> str:
    shown = f"{ratio:.2f}x" if ratio is not None else "-"
    return f"{label:<{width}}  {q:>9.1f}  {f:>9.1f}  {shown:>9}"
