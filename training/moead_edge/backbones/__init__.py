"""Frozen feature extractors: each returns a list of tap tensors plus their channels and strides."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class BackboneSpec:
    name: str  # "mobilenet_v2" | "efficientnet_b4"
    taps: tuple[str, ...]
    pretrained: bool


def build_backbone(spec: BackboneSpec) -> nn.Module:
    if spec.name == "mobilenet_v2":
        from .mobilenet_v2 import MobileNetV2Features

        net = MobileNetV2Features(list(spec.taps))
        if spec.pretrained:
            from .nsfwjs import converted_weights

            state = converted_weights()
            own = net.state_dict()
            missing = [k for k in own if k not in state]
            if missing:
                raise RuntimeError(f"converted MobileNetV2 weights lack {missing[:3]}")
            net.load_state_dict({k: state[k] for k in own})
    elif spec.name == "efficientnet_b4":
        from .efficientnet import EfficientNetB4Features

        net = EfficientNetB4Features(pretrained=spec.pretrained)
    else:
        raise ValueError(f"unknown backbone {spec.name!r} (known: mobilenet_v2, efficientnet_b4)")
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def weights_provenance(spec: BackboneSpec) -> dict[str, str]:
    """What the manifest's provenance.weights says about these backbone weights."""
    if spec.name == "mobilenet_v2" and spec.pretrained:
        from .nsfwjs import provenance

        p = provenance()
        return {"backbone": p.backbone, "source": p.source, "license": p.license, "sha256": p.sha256}
    if spec.name == "efficientnet_b4" and spec.pretrained:
        from .efficientnet import TIMM_NAME

        return {"backbone": f"EfficientNet-B4 ({TIMM_NAME}, ImageNet)", "source": f"timm {TIMM_NAME} pretrained",
                "license": "Apache-2.0"}
    return {"backbone": f"{spec.name} (random init, not pretrained)", "source": "none", "license": "n/a"}
