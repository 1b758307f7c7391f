"""Model/training configs: training/configs/<name>.yaml or a path to a user's YAML file."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..backbones import BackboneSpec

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


class ConfigError(ValueError):
    pass


DISTANCES = ("l2", "relative_l2", "whitened_relative_l2")


@dataclass(frozen=True)
class InputScaling:
    """pixel' = (pixel * scale - mean[c]) / std[c] with pixel in 0..255 (the manifest's input spec)."""
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    grad_clip: float
    lr_step_epochs: int
    lr_gamma: float
    balance_weight: float
    seed: int


@dataclass(frozen=True)
class ModelConfig:
    name: str
    backbone: BackboneSpec
    input_size: int
    scaling: InputScaling
    hidden_dim: int
    nhead: int
    ffn_dim: int
    experts: int
    top_k: int
    rounds: int
    neighbour: int
    dropout: float
    jitter_scale: float
    jitter_prob: float
    score_kernel: int
    blur_sigma: float
    train: TrainSettings
    # How the anomaly map compares features and reconstruction (DISTANCES): "l2" is the
    # paper's per-position L2 distance; "relative_l2" divides it by the feature vector's norm;
    # "whitened_relative_l2" also weights each channel by its inverse training residual.
    distance: str = "l2"

    @property
    def grid(self) -> tuple[int, int]:
        return (self.input_size // 16, self.input_size // 16)


def _build(cls, data: dict, where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}")
    missing = sorted(f.name for f in dataclasses.fields(cls)
                     if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    return data


def load_config(name_or_path: str, overrides: dict | None = None) -> ModelConfig:
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"{path}: no such config (built in: {', '.join(known)})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    raw = dict(raw)
    raw.setdefault("name", path.stem)
    try:
        bb = _build(BackboneSpec, dict(raw.pop("backbone")), f"{path}: backbone")
        sc = _build(InputScaling, dict(raw.pop("scaling")), f"{path}: scaling")
        tr = dict(raw.pop("train"))
        tr.update({k: v for k, v in (overrides or {}).items() if v is not None})
        tr = _build(TrainSettings, tr, f"{path}: train")
    except KeyError as e:
        raise ConfigError(f"{path}: missing section {e}") from e
    _build(ModelConfig, {**raw, "backbone": 0, "scaling": 0, "train": 0}, str(path))
    cfg = ModelConfig(
        backbone=BackboneSpec(name=bb["name"], taps=tuple(bb["taps"]), pretrained=bool(bb["pretrained"])),
        scaling=InputScaling(scale=float(sc["scale"]), mean=tuple(sc["mean"]), std=tuple(sc["std"])),
        train=TrainSettings(**tr), **raw)
    if cfg.input_size % 16:
        raise ConfigError(f"{path}: input_size must be a multiple of 16, got {cfg.input_size}")
    if cfg.distance not in DISTANCES:
        raise ConfigError(f"{path}: distance must be one of {', '.join(DISTANCES)}, got {cfg.distance!r}")
    return cfg


def config_to_dict(cfg: ModelConfig) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict) -> ModelConfig:
    d = dict(d)
    bb = d.pop("backbone")
    return ModelConfig(backbone=BackboneSpec(name=bb["name"], taps=tuple(bb["taps"]), pretrained=bb["pretrained"]),
                       scaling=InputScaling(**{**d.pop("scaling")}), train=TrainSettings(**d.pop("train")), **d)
