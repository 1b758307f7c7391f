"""MobileNetV2 1.0 (Keras layout) in PyTorch, truncated after the last requested tap.

Two details decide whether Keras weights reproduce Keras activations: stride-2 convolutions
pad (top 0, bottom 1, left 0, right 1) for even inputs (Keras' ZeroPadding2D from
`correct_pad`), and BatchNorm uses epsilon 1e-3.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
EXPANSION = 6
# (output channels, stride) of block_1 .. block_10: the ImageNet-frozen part of nsfwjs' model.
BLOCKS = [(24, 2), (24, 1), (32, 2), (32, 1), (32, 1), (64, 2), (64, 1), (64, 1), (64, 1), (96, 1)]
# Tap name -> (channels, stride): the output of that block (after its residual add).
def _taps() -> dict[str, tuple[int, int]]:
    taps, stride = {"expanded_conv": (16, 2)}, 2
    for i, (channels, s) in enumerate(BLOCKS):
        stride *= s
        taps[f"block_{i + 1}"] = (channels, stride)
    return taps


TAPS = _taps()

class _ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, groups: int = 1, relu6: bool = True):
        super().__init__()
        self.stride = stride
        # Keras pads "same" symmetrically at stride 1; at stride 2 an explicit (0,1,0,1) pad + "valid".
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=(k // 2 if stride == 1 else 0), groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.relu6 = relu6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            x = F.pad(x, (0, 1, 0, 1))
        x = self.bn(self.conv(x))
        return F.relu6(x) if self.relu6 else x


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: bool):
        super().__init__()
        hidden = cin * EXPANSION if expand else cin
        self.expand = _ConvBN(cin, hidden, 1, 1) if expand else None
        self.depthwise = _ConvBN(hidden, hidden, 3, stride, groups=hidden)
        self.project = _ConvBN(hidden, cout, 1, 1, relu6=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class MobileNetV2Features(nn.Module):
    """Returns the requested taps, in the order given; layers after the last tap are not built."""

    def __init__(self, taps: list[str]):
        super().__init__()
        unknown = [t for t in taps if t not in TAPS]
        if unknown:
            raise ValueError(f"unknown MobileNetV2 taps {unknown}; known: {list(TAPS)}")
        self.taps = list(taps)
        order = list(TAPS)
        depth = max(order.index(t) for t in taps)  # 0 = expanded_conv, i = block_i
        self.stem = _ConvBN(3, 32, 3, 2)
        self.blocks = nn.ModuleList([_InvertedResidual(32, 16, 1, expand=False)])
        cin = 16
        for cout, stride in BLOCKS[:depth]:
            self.blocks.append(_InvertedResidual(cin, cout, stride, expand=True))
            cin = cout
        self._names = order[: depth + 1]
        self.channels = [TAPS[t][0] for t in taps]
        self.strides = [TAPS[t][1] for t in taps]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        x = self.stem(x)
        for name, block in zip(self._names, self.blocks):
            x = block(x)
            out[name] = x
        return [out[t] for t in self.taps]


def keras_layer_names() -> dict[str, tuple[str, str]]:
    """torch module prefix -> (kind, Keras layer name) for the full Conv1..block_10 port."""
    names: dict[str, tuple[str, str]] = {"stem.conv": ("conv", "Conv1"), "stem.bn": ("bn", "bn_Conv1")}
    names["blocks.0.depthwise.conv"] = ("dwconv", "expanded_conv_depthwise")
    names["blocks.0.depthwise.bn"] = ("bn", "expanded_conv_depthwise_BN")
    names["blocks.0.project.conv"] = ("conv", "expanded_conv_project")
    names["blocks.0.project.bn"] = ("bn", "expanded_conv_project_BN")
    for i in range(1, len(BLOCKS) + 1):
        for part, kind in (("expand", "conv"), ("depthwise", "dwconv"), ("project", "conv")):
            names[f"blocks.{i}.{part}.conv"] = (kind, f"block_{i}_{part}")
            names[f"blocks.{i}.{part}.bn"] = ("bn", f"block_{i}_{part}_BN")
    return names
