"""The whole detector: frozen backbone -> MFCN neck -> reconstruction -> per-position L2 distance."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import build_backbone
from .config import ModelConfig
from .reconstruction import Reconstruction


class Neck(nn.Module):
    """UniAD's MFCN: every tap resized (bilinear, align_corners=True, no anti-aliasing) to the
    stride-16 grid, then concatenated on channels. Explicit sizes keep the export a fixed Resize."""

    def __init__(self, grid: tuple[int, int]):
        super().__init__()
        self.grid = grid

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([t if tuple(t.shape[-2:]) == self.grid else
                          F.interpolate(t, size=self.grid, mode="bilinear", align_corners=True) for t in taps], dim=1)


# Keeps the relative distance finite where every feature is zero (a black, clipped region).
RELATIVE_FLOOR = 1e-6
# A channel's residual energy is floored at this fraction of the median channel's, so a
# channel that never varies on the training images (a dead unit) cannot get an unbounded weight.
RESIDUAL_FLOOR = 1e-3


def distance_map(features: torch.Tensor, reconstruction: torch.Tensor, kind: str = "l2",
                 channel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C, h, w) features and reconstruction -> (B, 1, h, w) anomaly map.

    "l2": the paper's per-position L2 distance. "relative_l2": the same divided by the
    feature vector's norm at that position. The plain distance scales with feature
    magnitude, and a darkening defect (a stain) shrinks MobileNetV2's features, so its
    error can come out below that of bright, intact texture elsewhere in the image; the
    relative error does not depend on how bright the surface is.
    "whitened_relative_l2": the relative distance with each channel's squared residual
    multiplied by `channel_weights` (see `residual_weights`), so that channels the network
    reconstructs closely on good images count as much as the noisy ones.
    """
    squared = (reconstruction - features) ** 2
    if kind == "whitened_relative_l2":
        if channel_weights is None:
            raise ValueError("distance whitened_relative_l2 needs the per-channel residual weights that training "
                             "computes; this model has none (made before they existed: run `fit` on its work dir again)")
        squared = squared * channel_weights.view(1, -1, 1, 1)
    elif kind not in ("l2", "relative_l2"):
        raise ValueError(f"unknown distance {kind!r}")
    dist = squared.sum(1, keepdim=True).sqrt()
    if kind == "l2":
        return dist
    return dist / (features ** 2).sum(1, keepdim=True).sqrt().clamp_min(RELATIVE_FLOOR)


@torch.no_grad()
def residual_weights(reconstruction: nn.Module, features: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """1 / (mean squared reconstruction residual of each channel) over good training features.

    The reconstruction's error is far from uniform across the 216 tapped channels (a 30x
    spread on the shipped model), and summed as is, the channels it reconstructs poorly even
    on good images drown the others. A stain shows in the closely reconstructed ones.
    Weighting each squared residual by its inverse training mean is a diagonal whitening of
    the residual (a Mahalanobis distance with a diagonal covariance).
    """
    was_training = reconstruction.training
    reconstruction.eval()  # no feature jitter: the residuals the map will see on good images
    total = torch.zeros(features.shape[1], dtype=torch.float64)
    for i in range(0, len(features), batch):
        x = features[i:i + batch]
        rec, _ = reconstruction(x)
        total += ((rec - x) ** 2).sum((0, 2, 3), dtype=torch.float64)
    reconstruction.train(was_training)
    mean = total / (features.shape[0] * features.shape[2] * features.shape[3])
    return (1.0 / mean.clamp_min(float(mean.median()) * RESIDUAL_FLOOR)).float()


class MoEAD(nn.Module):
    def __init__(self, cfg: ModelConfig, backbone: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone if backbone is not None else build_backbone(cfg.backbone)
        self.neck = Neck(cfg.grid)
        channels = sum(self.backbone.channels)
        self.reconstruction = Reconstruction(
            channels=channels, grid=cfg.grid, hidden_dim=cfg.hidden_dim, nhead=cfg.nhead, ffn_dim=cfg.ffn_dim,
            experts=cfg.experts, top_k=cfg.top_k, rounds=cfg.rounds, neighbour=cfg.neighbour, dropout=cfg.dropout,
            jitter_scale=cfg.jitter_scale, jitter_prob=cfg.jitter_prob)
        # Set by training (residual_weights) for the whitened distance; a buffer, so the export
        # carries it as a constant.
        self.register_buffer("channel_weights", None)

    @property
    def feature_channels(self) -> int:
        return self.reconstruction.channels

    def train(self, mode: bool = True) -> "MoEAD":
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm keeps its running statistics
        return self

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized images (B, 3, S, S) -> anomaly map (B, 1, S/16, S/16)."""
        feats = self.neck(self.backbone(images))
        rec, _ = self.reconstruction(feats)
        return distance_map(feats, rec, self.cfg.distance, self.channel_weights)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
