"""One ONNX graph per bundle: image -> backbone -> neck -> reconstruction -> L2 distance map.

Opset 17 (LayerNormalization is one op), fixed H x W, dynamic batch, the dense MoE with
the router in float, BatchNorm folded into the convolutions, Keras' zero pads folded into
the convolutions and token projections as Gemm (graph_passes), no custom ops.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..model import MoEAD
from .graph_passes import fold_pads, fold_shapes, linear_to_gemm

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "anomaly_map"


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Copy of the model with each Conv+BatchNorm pair of the MobileNetV2 port folded into one Conv."""
    from ..backbones.mobilenet_v2 import _ConvBN

    model = copy.deepcopy(model).eval()
    for m in model.modules():
        if isinstance(m, _ConvBN) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv = fuse_conv_bn_eval(m.conv, m.bn)
            m.bn = nn.Identity()
    return model


def share_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """The rounds reuse one set of weights; the exporter refers to later uses through Identity
    nodes (which hide from the quantizer that the MatMul's B is a constant) and may repeat
    equal tensors. Point every use at one initializer per distinct tensor."""
    first: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    keep = []
    inits = {i.name for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    aliases = [n for n in model.graph.node
               if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in outputs]
    for n in aliases:
        rename[n.output[0]] = n.input[0]
        model.graph.node.remove(n)
    for init in model.graph.initializer:
        key = (init.data_type, tuple(init.dims), onnx.numpy_helper.to_array(init).tobytes())
        if key in first:
            rename[init.name] = first[key]
            for alias, target in rename.items():
                if target == init.name:
                    rename[alias] = first[key]
        else:
            first[key] = init.name
            keep.append(init)
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    return model


def export_onnx(model: MoEAD, path: Path, batch: int = 1) -> Path:
    size = model.cfg.input_size
    net = fold_batchnorm(model)
    dummy = torch.zeros(batch, 3, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (dummy,), str(path), opset_version=OPSET, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamo=False, do_constant_folding=True,
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    graph = fold_shapes(linear_to_gemm(fold_pads(share_initializers(onnx.load(str(path))))))
    onnx.save(graph, str(path))
    onnx.checker.check_model(graph)
    custom = {n.domain for n in graph.graph.node if n.domain not in ("", "ai.onnx")}
    if custom:
        raise RuntimeError(f"{path}: export produced custom-domain ops {custom}")
    return path


def run_onnx(path: Path, images: np.ndarray, threads: int = 0) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: images.astype(np.float32)})[0]
