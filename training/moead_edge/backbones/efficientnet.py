"""EfficientNet-B4 taps for the `paper` config, through timm (imported lazily).

The reference uses the lukemelas port of the TF EfficientNet-B4 ImageNet weights; timm's
`tf_efficientnet_b4` carries the same TF weights with dynamic "same" padding (the reference
pads one stride-2 depthwise conv statically, which shifts that grid by a pixel). Taps are
the ends of stages 1, 2, 3 and 5 = reference blocks [1, 5, 9, 21]: 24/32/56/160 channels
at strides 2/4/8/16.
"""
from __future__ import annotations

import torch
from torch import nn

TIMM_NAME = "tf_efficientnet_b4"
TAP_INDICES = (0, 1, 2, 3)
LAST_STAGE = 4  # timm stage index of the stride-16, 160-channel stage (reference block 21)


class EfficientNetB4Features(nn.Module):
    def __init__(self, pretrained: bool):
        super().__init__()
        try:
            import timm
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise RuntimeError("the `paper` config needs timm: training/.venv/bin/pip install -r "
                               "training/requirements.txt") from e
        try:
            self.net = timm.create_model(TIMM_NAME, pretrained=pretrained, features_only=True,
                                         out_indices=TAP_INDICES)
        except Exception as e:
            if pretrained:
                raise RuntimeError(f"could not get the pretrained {TIMM_NAME} weights through timm "
                                   f"(needs access to the Hugging Face hub once): {e}") from e
            raise
        # Stages 6-7 (13.1 M parameters) feed no tap: drop them, as the reference's export can.
        self.net.blocks = self.net.blocks[:LAST_STAGE + 1]
        self.taps = [f"stage_{i}" for i in TAP_INDICES]
        self.channels = list(self.net.feature_info.channels())
        self.strides = list(self.net.feature_info.reduction())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.net(x))
