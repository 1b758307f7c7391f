"""Rewrites of the exported ONNX graph that make it cheaper to run and to quantize.

The passes keep the arithmetic: the maps are equal to the unrewritten graph's (checked by
the export's parity test against PyTorch).

- `fold_pads`: Keras' stride-2 convolutions pad (0, 1, 0, 1) with an explicit zero Pad. The
  exporter computes those pads with a chain of shape ops, so onnxruntime cannot fuse them,
  and in the INT8 graph every Pad sat between a DequantizeLinear and a QuantizeLinear. The
  pass evaluates the pads once and moves them into the Conv's own (asymmetric) `pads`.
- `linear_to_gemm`: `nn.Linear` on (B, L, d) tokens exports as MatMul + Add. onnxruntime
  fuses quantized Gemm with its bias (QGemm) but leaves a quantized MatMul's bias Add in
  float, dequantized and requantized around it. The pass flattens the tokens to 2-D around a
  Gemm, and moves a ReLU that follows the bias onto the Gemm output, where the quantizer can
  fold it into the output range.
- `split_experts` (INT8 only, applied before quantizing): the dense MoE weights each expert's
  hidden block by its gate, a float multiply on the (B·L, E·F) hidden layer, before one MatMul
  with all experts' second layers. Quantized, that multiply sat between a DequantizeLinear and
  a QuantizeLinear of the whole hidden layer. The pass splits the hidden layer per expert
  (a Split that runs on the quantized bytes), gives each expert its own MatMul, and applies
  the gates to the E small (B·L, d) outputs: Σ_e g_e (h_e W_e) = (Σ_e g_e h_e) W. In FP32 the
  single MatMul is faster, so the FP32 graph keeps it.
- `gemms_as_convs` (INT8 only, applied before quantizing): onnxruntime runs a quantized Gemm
  as QGemm, whose int32 results are requantized to 8 bits by a separate 4-wide SSE pass
  (MlasRequantizeOutput): on this x86 host the expert layer took 101 µs as QGemm and 58 µs as
  the convolution below. A quantized
  1×1 convolution with symmetric int8 weights runs through MLAS's symmetric-conv kernels
  instead, which requantize inside the AVX-512 kernel. The pass writes each given Gemm as
  such a convolution over the token rows laid out as an NHWC image of height B·L and
  width 1 (Reshape, Transpose to NCHW, Conv, the Gemm's ReLU, Transpose back, Reshape).
  onnxruntime's layout pass turns the Conv into its NHWC QLinearConv and cancels the two
  Transposes, so only the Reshapes remain. Same products and sums: the 8-bit outputs equal
  QGemm's on the same input. In FP32 the Gemm is faster, so the FP32 graph keeps it.
- `fold_shapes`: the exporter writes every `x.reshape(x.shape[0], ...)` as a chain of Shape,
  Gather, Unsqueeze, Concat (and Slice, Cast, Where for the MoE) evaluated on each run:
  about 280 nodes here, 0.6 ms of a 10 ms INT8 run. Only the batch axis is dynamic, so the
  pass evaluates each shape-derived tensor at batch 1, 2 and 3: what does not change becomes
  a constant, and a Reshape target that changes only on the batch axis becomes a constant
  with -1 there.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import helper


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    uses: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            uses[name].append(node)
    return uses


def _run(model: onnx.ModelProto, names: list[str], types: dict[str, int], batch: int) -> dict[str, np.ndarray]:
    """Values of intermediate tensors (element types given) on an all-zero input whose dynamic axes are `batch`."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_tensor_value_info(n, types[n], None) for n in names)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.zeros([d.dim_value or batch for d in i.type.tensor_type.shape.dim], np.float32)
             for i in model.graph.input}
    return dict(zip(names, sess.run(names, feeds)))


def _static_shapes(model: onnx.ModelProto, names: list[str]) -> dict[str, list[int]]:
    """Shapes of intermediate tensors, -1 where they follow the batch size (probed at 1 and 2)."""
    floats = dict.fromkeys(names, onnx.TensorProto.FLOAT)
    one, two = _run(model, names, floats, 1), _run(model, names, floats, 2)
    return {n: [a if a == b else -1 for a, b in zip(one[n].shape, two[n].shape)] for n in names}


def prune(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop nodes and initializers that no graph output depends on."""
    needed = {o.name for o in model.graph.output}
    kept = []
    for node in reversed(model.graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    del model.graph.node[:]
    model.graph.node.extend(reversed(kept))
    inits = [i for i in model.graph.initializer if i.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    return model


def fold_pads(model: onnx.ModelProto) -> onnx.ModelProto:
    uses = _consumers(model)
    # Only zero-filling Pads (mode "constant", no fill value) that feed nothing but Convs.
    pads = [n for n in model.graph.node
            if n.op_type == "Pad" and _pad_mode(n) == b"constant" and (len(n.input) < 3 or not n.input[2])
            and uses[n.output[0]] and all(c.op_type == "Conv" for c in uses[n.output[0]])]
    if not pads:
        return model
    names = [n.input[1] for n in pads]
    ints = dict.fromkeys(names, onnx.TensorProto.INT64)
    values, again = _run(model, names, ints, 1), _run(model, names, ints, 2)
    for pad in pads:
        n0, c0, top, left, n1, c1, bottom, right = values[pad.input[1]].tolist()
        convs = uses[pad.output[0]]
        batch_dependent = not np.array_equal(values[pad.input[1]], again[pad.input[1]])
        if batch_dependent or n0 or c0 or n1 or c1 or any(_auto_pad(c) != b"NOTSET" for c in convs):
            continue
        for conv in convs:
            attrs = {a.name: a for a in conv.attribute}
            old = list(attrs["pads"].ints) if "pads" in attrs else [0, 0, 0, 0]
            if "pads" in attrs:
                conv.attribute.remove(attrs["pads"])
            conv.attribute.append(helper.make_attribute("pads", [old[0] + top, old[1] + left, old[2] + bottom, old[3] + right]))
            conv.input[0] = pad.input[0]
    return prune(model)


def _auto_pad(node: onnx.NodeProto) -> bytes:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == "auto_pad"), b"NOTSET")


def _pad_mode(node: onnx.NodeProto) -> bytes:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == "mode"), b"constant")


def _splice(model: onnx.ModelProto, rewritten: dict[str, list[onnx.NodeProto]], absorbed: set[str]) -> None:
    """Puts each rewritten node's replacement where it stood, and drops the absorbed nodes."""
    order = []
    for node in model.graph.node:
        if node.name in rewritten:
            order.extend(rewritten[node.name])
        elif node.name not in absorbed:
            order.append(node)
    del model.graph.node[:]
    model.graph.node.extend(order)


def linear_to_gemm(model: onnx.ModelProto) -> onnx.ModelProto:
    weights = {i.name: i for i in model.graph.initializer}
    uses = _consumers(model)
    candidates = [n for n in model.graph.node
                  if n.op_type == "MatMul" and n.input[1] in weights and len(weights[n.input[1]].dims) == 2
                  and len(uses[n.output[0]]) == 1 and uses[n.output[0]][0].op_type == "Add"]
    if not candidates:
        return model
    shapes = _static_shapes(model, [n.input[0] for n in candidates])
    rewritten: dict[str, list[onnx.NodeProto]] = {}
    absorbed: set[str] = set()
    for mm in candidates:
        add = uses[mm.output[0]][0]
        bias = [i for i in add.input if i != mm.output[0]]
        shape = shapes[mm.input[0]]
        if len(bias) != 1 or bias[0] not in weights or len(weights[bias[0]].dims) != 1 \
                or len(shape) < 3 or shape.count(-1) > 1:
            continue
        k, m = weights[mm.input[1]].dims
        flat_shape, out_shape = f"{mm.name}/flat_shape", f"{mm.name}/unflat_shape"
        model.graph.initializer.extend([onnx.numpy_helper.from_array(np.array([-1, k], np.int64), flat_shape),
                                        onnx.numpy_helper.from_array(np.array(shape[:-1] + [m], np.int64), out_shape)])
        flat, y = f"{mm.name}/flat", f"{mm.name}/gemm"
        nodes = [helper.make_node("Reshape", [mm.input[0], flat_shape], [flat], name=f"{mm.name}/flatten"),
                 helper.make_node("Gemm", [flat, mm.input[1], bias[0]], [y], name=mm.name.replace("MatMul", "Gemm"))]
        last = add
        after = uses[add.output[0]]
        if len(after) == 1 and after[0].op_type == "Relu":
            last = after[0]
            nodes.append(helper.make_node("Relu", [y], [f"{y}/relu"], name=last.name))
            y = f"{y}/relu"
            absorbed.add(last.name)
        nodes.append(helper.make_node("Reshape", [y, out_shape], [last.output[0]], name=f"{mm.name}/unflatten"))
        rewritten[mm.name] = nodes
        absorbed.add(add.name)
    _splice(model, rewritten, absorbed)
    return model


def _shape_derived(model: onnx.ModelProto) -> list[str]:
    """Tensors computed from tensor shapes and constants only (graph order)."""
    constant = {i.name for i in model.graph.initializer}
    constant.update(o for n in model.graph.node if n.op_type == "Constant" for o in n.output)
    derived: list[str] = []
    known: set[str] = set()
    for node in model.graph.node:
        inputs = [i for i in node.input if i]
        if inputs and all(i in constant for i in inputs):
            constant.update(node.output)  # folded by onnxruntime itself; may feed shape arithmetic
        elif node.op_type == "Shape" or (inputs and all(i in known or i in constant for i in inputs)):
            derived.extend(node.output)
            known.update(node.output)
    return derived


def _element_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every intermediate tensor that shape inference knows."""
    inferred = onnx.shape_inference.infer_shapes(model)
    return {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info if v.type.tensor_type.elem_type}


def _batch_axis(shapes: list[tuple[int, ...]]) -> int | None:
    """The one axis of a tensor whose size is batch × its batch-1 size, if nothing else varies."""
    first = shapes[0]
    if any(len(s) != len(first) for s in shapes):
        return None
    varying = [i for i in range(len(first)) if any(s[i] != first[i] for s in shapes)]
    if len(varying) != 1 or any(s[varying[0]] != (b + 1) * first[varying[0]] for b, s in enumerate(shapes)):
        return None
    return varying[0]


_BROADCASTING = {"Add", "Sub", "Mul", "Div", "Where"}


def fold_shapes(model: onnx.ModelProto, max_elements: int = 4096) -> onnx.ModelProto:
    derived = _shape_derived(model)
    if not derived:
        return model
    uses = _consumers(model)
    # Outputs of the nodes that consume shape arithmetic: their shapes decide what can go.
    targets = [n.output[0] for n in model.graph.node
               if n.op_type in ("Reshape", "ConstantOfShape", "Expand") and n.input[1 if n.op_type != "ConstantOfShape" else 0] in derived]
    siblings = [i for t in targets for u in uses[t] if u.op_type in _BROADCASTING for i in u.input if i and i != t]
    types = _element_types(model)
    probed = [n for n in dict.fromkeys(derived + targets + siblings) if n in types]
    runs = [_run(model, probed, types, batch) for batch in (1, 2, 3)]
    shape = {name: [tuple(r[name].shape) for r in runs] for name in runs[0]}
    replacement: dict[str, str] = {}

    def constant(name: str, value: np.ndarray) -> str:
        model.graph.initializer.append(onnx.numpy_helper.from_array(value, name))
        return name

    for name in derived:
        value = runs[0].get(name)
        if value is not None and value.size <= max_elements and all(
                r[name].shape == value.shape and np.array_equal(r[name], value) for r in runs[1:]):
            replacement[name] = constant(f"{name}/folded", value)

    def broadcast_only(out: str) -> bool:
        """Every consumer broadcasts, and another of its inputs already has this full shape."""
        return out in shape and bool(uses[out]) and all(
            u.op_type in _BROADCASTING and any(i != out and shape.get(i) == shape[out] for i in u.input)
            for u in uses[out])

    for node in model.graph.node:
        out = node.output[0]
        if node.op_type == "Reshape" and out in shape and node.input[1] in shape and node.input[1] not in replacement:
            axis = _batch_axis(shape[out])
            if axis is not None:
                target = np.array(shape[out][0], np.int64)
                target[axis] = -1
                node.input[1] = constant(f"{node.name}/shape", target)
        elif node.op_type == "ConstantOfShape" and node.input[0] not in replacement and broadcast_only(out):
            # A uniform fill only ever broadcast against full-size tensors: one element does.
            fill = runs[0][out].reshape(-1)[:1].reshape([1] * runs[0][out].ndim)
            replacement[out] = constant(f"{node.name}/fill", fill)
        elif node.op_type == "Expand" and node.input[1] not in replacement and broadcast_only(out):
            replacement[out] = node.input[0]  # the consumers broadcast it themselves
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in replacement:
                node.input[i] = replacement[name]
    return prune(model)


def _constant_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            values[n.output[0]] = onnx.numpy_helper.to_array(n.attribute[0].t)
    return values


def split_experts(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """See the module docstring. Returns the rewritten graph and the names of the Split nodes
    of the hidden layers (the quantizer must quantize those, so they run on 8-bit data)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    uses = _consumers(model)
    values = _constant_values(model)
    matches = []
    for mm in model.graph.node:
        if mm.op_type != "MatMul":
            continue
        w = values.get(mm.input[1])
        merge = producer.get(mm.input[0])
        gate_mul = producer.get(merge.input[0]) if merge is not None and merge.op_type == "Reshape" else None
        if w is None or w.ndim != 2 or gate_mul is None or gate_mul.op_type != "Mul":
            continue
        blocks, unsqueeze = (producer.get(i) for i in gate_mul.input)
        unflatten = producer.get(blocks.input[0]) if blocks is not None and blocks.op_type == "Reshape" else None
        block_shape = values.get(blocks.input[1]) if blocks is not None else None
        if unflatten is None or unflatten.op_type != "Reshape" or unsqueeze is None or unsqueeze.op_type != "Unsqueeze" \
                or block_shape is None or len(block_shape) != 4 or int(np.prod(block_shape[2:])) != w.shape[0] \
                or any(len(uses[t]) != 1 for t in (merge.output[0], gate_mul.output[0], blocks.output[0])):
            continue
        matches.append((mm, merge, gate_mul, blocks, unsqueeze, unflatten, [int(v) for v in block_shape], w))
    if not matches:
        return model, []
    shapes = _static_shapes(model, [t for m in matches for t in (m[0].output[0], m[5].input[0])])
    # The Split cuts the hidden layer on axis 1, so it must be the 2-D (tokens, experts x hidden)
    # Gemm output that linear_to_gemm leaves.
    matches = [m for m in matches if shapes[m[5].input[0]] == [-1, m[7].shape[0]]]
    rewritten: dict[str, list[onnx.NodeProto]] = {}
    absorbed: set[str] = set()
    splits = []
    for mm, merge, gate_mul, blocks, unsqueeze, unflatten, (_, _, experts, hidden), w in matches:
        p = f"{mm.name}/split"
        out_shape = shapes[mm.output[0]]
        model.graph.initializer.extend([
            onnx.numpy_helper.from_array(np.full(experts, hidden, np.int64), f"{p}/hidden_sizes"),
            onnx.numpy_helper.from_array(np.ones(experts, np.int64), f"{p}/gate_sizes"),
            onnx.numpy_helper.from_array(np.array([-1, experts], np.int64), f"{p}/gates_shape"),
            onnx.numpy_helper.from_array(np.array(out_shape, np.int64), f"{p}/out_shape")])
        # The recursion shares one weight between rounds; its per-expert blocks are shared too.
        blocks_of = [f"{mm.input[1]}/expert{e}" for e in range(experts)]
        if blocks_of[0] not in values:
            for e, name in enumerate(blocks_of):
                values[name] = np.ascontiguousarray(w[e * hidden:(e + 1) * hidden])
                model.graph.initializer.append(onnx.numpy_helper.from_array(values[name], name))
        gates = unsqueeze.input[0]
        nodes = [helper.make_node("Split", [unflatten.input[0], f"{p}/hidden_sizes"], [f"{p}/h{e}" for e in range(experts)],
                                  axis=1, name=f"{p}/hidden"),
                 helper.make_node("Reshape", [gates, f"{p}/gates_shape"], [f"{p}/gates"], name=f"{p}/gates_flat"),
                 helper.make_node("Split", [f"{p}/gates", f"{p}/gate_sizes"], [f"{p}/g{e}" for e in range(experts)],
                                  axis=1, name=f"{p}/gate")]
        for e in range(experts):
            nodes += [helper.make_node("MatMul", [f"{p}/h{e}", blocks_of[e]], [f"{p}/y{e}"], name=f"{p}/expert{e}"),
                      helper.make_node("Mul", [f"{p}/y{e}", f"{p}/g{e}"], [f"{p}/gated{e}"], name=f"{p}/gated{e}")]
        nodes += [helper.make_node("Sum", [f"{p}/gated{e}" for e in range(experts)], [f"{p}/sum"], name=f"{p}/sum"),
                  helper.make_node("Reshape", [f"{p}/sum", f"{p}/out_shape"], [mm.output[0]], name=f"{p}/unflatten")]
        rewritten[mm.name] = nodes
        absorbed |= {merge.name, gate_mul.name, blocks.name}
        splits.append(f"{p}/hidden")
    _splice(model, rewritten, absorbed)
    return prune(model), splits


def gemms_as_convs(model: onnx.ModelProto, names: set[str]) -> tuple[onnx.ModelProto, list[str]]:
    """See the module docstring. Rewrites the named Gemm nodes (constant 2-D weight, no
    transA, alpha = beta = 1). Returns the graph and the names of the Reshape and Transpose
    nodes it added: the quantizer must quantize those too, so that the 8-bit tensors pass
    through them instead of float ones."""
    weights = _constant_values(model)
    uses = _consumers(model)
    rewritten: dict[str, list[onnx.NodeProto]] = {}
    absorbed: set[str] = set()
    layout_nodes: list[str] = []
    for gemm in model.graph.node:
        if gemm.op_type != "Gemm" or gemm.name not in names:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
        w = weights.get(gemm.input[1])
        if w is None or w.ndim != 2 or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            continue
        k, m = (w.shape[::-1] if attrs.get("transB", 0) else w.shape)
        # Rounds of the recursion share their weights; their kernels are shared the same way.
        kernel = f"{gemm.input[1]}/conv1x1"
        if kernel not in weights:
            weights[kernel] = (w if attrs.get("transB", 0) else w.T).reshape(m, k, 1, 1)
            model.graph.initializer.extend([
                onnx.numpy_helper.from_array(np.ascontiguousarray(weights[kernel]), kernel),
                onnx.numpy_helper.from_array(np.array([1, -1, 1, k], np.int64), f"{kernel}/image_shape"),
                onnx.numpy_helper.from_array(np.array([-1, m], np.int64), f"{kernel}/rows_shape")])
        p = gemm.name
        after = uses[gemm.output[0]]
        # An unnamed ReLU stays where it is: _splice drops absorbed nodes by name.
        relu = after[0] if len(after) == 1 and after[0].op_type == "Relu" and after[0].name else None
        bias = [gemm.input[2]] if len(gemm.input) > 2 and gemm.input[2] else []
        nodes = [helper.make_node("Reshape", [gemm.input[0], f"{kernel}/image_shape"], [f"{p}/nhwc"], name=f"{p}/to_image"),
                 helper.make_node("Transpose", [f"{p}/nhwc"], [f"{p}/nchw"], perm=[0, 3, 1, 2], name=f"{p}/to_nchw"),
                 helper.make_node("Conv", [f"{p}/nchw", kernel, *bias], [f"{p}/conv"], kernel_shape=[1, 1], name=f"{p}/conv")]
        y = f"{p}/conv"
        if relu is not None:
            nodes.append(helper.make_node("Relu", [y], [f"{p}/relu"], name=relu.name))
            y = f"{p}/relu"
            absorbed.add(relu.name)
        nodes += [helper.make_node("Transpose", [y], [f"{p}/out_nhwc"], perm=[0, 2, 3, 1], name=f"{p}/to_nhwc"),
                  helper.make_node("Reshape", [f"{p}/out_nhwc", f"{kernel}/rows_shape"],
                                   [(relu or gemm).output[0]], name=f"{p}/to_rows")]
        layout_nodes += [n.name for n in nodes if n.op_type in ("Reshape", "Transpose")]
        rewritten[gemm.name] = nodes
    _splice(model, rewritten, absorbed)
    return prune(model), layout_nodes
