"""Training on a CPU: the frozen backbone's features are computed once and cached, then only
the reconstruction network trains (feature MSE + 0.01 x balance loss, feature jitter on)."""
from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..model import MoEAD, ModelConfig, residual_weights
from ..model.config import ConfigError, config_from_dict, config_to_dict

CHECKPOINT = "checkpoint.pt"
MODEL_FILE = "model.pt"
FEATURES = "features.pt"


def input_spec(cfg: ModelConfig) -> dict:
    """The manifest's `input` object for this config (what images are normalized with)."""
    return {"name": "image", "width": cfg.input_size, "height": cfg.input_size, "color": "RGB", "layout": "NCHW",
            "dtype": "float32", "resize": "bilinear", "scale": cfg.scaling.scale, "mean": list(cfg.scaling.mean),
            "std": list(cfg.scaling.std)}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def feature_key(cfg: ModelConfig, paths: Sequence[Path]) -> str:
    """Identity of the backbone features of these images: the backbone and its input, and each
    file's absolute path, size and mtime (so `--data x` and `--data /abs/x` are one image set)."""
    h = hashlib.sha256()
    h.update(json.dumps({"backbone": config_to_dict(cfg)["backbone"], "size": cfg.input_size,
                         "scaling": config_to_dict(cfg)["scaling"]}, sort_keys=True).encode())
    for p in paths:
        p = Path(p).resolve()
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@torch.no_grad()
def cached_features(model: MoEAD, paths: Sequence[Path], load: Callable[[Path], np.ndarray], cache: Path | None,
                    batch: int = 16, progress: bool = True) -> torch.Tensor:
    """Neck features (N, C, h, w) of the images, computed once per (backbone, image set)."""
    key = feature_key(model.cfg, paths)
    if cache is not None and cache.exists():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        if saved.get("key") == key:
            return saved["features"]
    model.eval()
    out = []
    for i in tqdm(range(0, len(paths), batch), desc="backbone features", unit="batch", disable=not progress):
        images = np.stack([load(p) for p in paths[i:i + batch]])
        out.append(model.features(torch.from_numpy(images)))
    feats = torch.cat(out)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        torch.save({"key": key, "features": feats}, tmp)
        tmp.replace(cache)
    return feats


@dataclass
class TrainResult:
    epochs: int
    seconds: float
    losses: list[float]


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _resumable(config: dict) -> dict:
    """What must match for a checkpoint to continue: everything but the epoch count, so a
    finished run can be extended with more epochs, and the map's distance, which the loss
    does not use (checkpoints from before that setting existed carry none)."""
    kept = {k: v for k, v in config.items() if k != "distance"}
    return {**kept, "train": {k: v for k, v in config["train"].items() if k != "epochs"}}


def _resumable_state(ckpt: Path, cfg: ModelConfig, images: int, data_key: str | None,
                     log: Callable[[str], None]) -> dict | None:
    """The checkpoint's state when this run may continue it, else None (said why)."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    if _resumable(state["config"]) != _resumable(config_to_dict(cfg)):
        log(f"{ckpt}: made with another config; starting over")
        return None
    if state["images"] != images:
        log(f"{ckpt}: made from {state['images']} images, not these {images}; starting over")
        return None
    # The image count alone let a run on another category of the same size continue this one.
    saved_key = state.get("data_key")
    if data_key is not None and saved_key != data_key:
        if saved_key is not None:
            log(f"{ckpt}: made from other image files (or another backbone); starting over")
            return None
        log(f"{ckpt}: written before checkpoints recorded their image files: only its image count was checked")
    if state["epoch"] > cfg.train.epochs:
        # Continuing would train nothing, and run.json and the manifest would claim the smaller count.
        raise ConfigError(f"{ckpt}: already trained for {state['epoch']} epochs, more than the {cfg.train.epochs} "
                          f"asked for; to train {cfg.train.epochs} epochs from scratch, run again with --no-resume "
                          f"(or another --work folder)")
    return state


def train_reconstruction(model: MoEAD, feats: torch.Tensor, work_dir: Path, resume: bool = True,
                         progress: bool = True, log: Callable[[str], None] = print,
                         data_key: str | None = None) -> TrainResult:
    """Train the reconstruction on cached features, checkpointing each epoch in `work_dir`.

    `data_key` (feature_key of the images) is stored in the checkpoint, and a checkpoint made
    from other images is not resumed; None skips that check."""
    cfg = model.cfg
    tr = cfg.train
    seed_everything(tr.seed)
    net = model.reconstruction
    opt = torch.optim.AdamW(net.parameters(), lr=tr.lr, betas=(0.9, 0.999), weight_decay=tr.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=tr.lr_step_epochs, gamma=tr.lr_gamma)
    gen = torch.Generator().manual_seed(tr.seed)
    start, losses, seconds = 0, [], 0.0
    ckpt = work_dir / CHECKPOINT
    if resume and ckpt.exists():
        state = _resumable_state(ckpt, cfg, len(feats), data_key, log)
        if state is not None:
            net.load_state_dict(state["reconstruction"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            start, losses, seconds = state["epoch"], state["losses"], state["seconds"]
            log(f"resuming from epoch {start} of {tr.epochs} ({ckpt})")
    work_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(range(start, tr.epochs), desc="training", unit="epoch", initial=start, total=tr.epochs,
               disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(feats), generator=gen)
        total, count = 0.0, 0
        for i in range(0, len(order), tr.batch_size):
            x = feats[order[i:i + tr.batch_size]]
            rec, balance = net(x)
            loss = torch.nn.functional.mse_loss(rec, x) + tr.balance_weight * balance
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tr.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), tr.grad_clip)
            opt.step()
            total += float(loss.detach()) * len(x)
            count += len(x)
        sched.step()
        losses.append(total / count)
        seconds += time.perf_counter() - t0
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        _atomic_save({"epoch": epoch + 1, "config": config_to_dict(cfg), "images": len(feats), "data_key": data_key,
                      "reconstruction": net.state_dict(), "optimizer": opt.state_dict(),
                      "scheduler": sched.state_dict(), "generator": gen.get_state(),
                      "torch_rng": torch.get_rng_state(), "losses": losses, "seconds": seconds}, ckpt)
        # The latest weights stay usable (export, evaluate) even if a long run is stopped.
        save_model(model, work_dir / MODEL_FILE, {"epochs": epoch + 1, "seconds": seconds, "losses": losses})
    model.eval()
    # Cheap (one pass over the cached features), so every model gets them, whatever its distance.
    model.channel_weights = residual_weights(net, feats)
    save_model(model, work_dir / MODEL_FILE, {"epochs": tr.epochs, "seconds": seconds, "losses": losses})
    return TrainResult(epochs=tr.epochs, seconds=seconds, losses=losses)


def save_model(model: MoEAD, path: Path, info: dict) -> None:
    weights = model.channel_weights
    _atomic_save({"config": config_to_dict(model.cfg), "reconstruction": model.reconstruction.state_dict(),
                  "channel_weights": None if weights is None else weights.clone(), "info": info}, path)


def load_model(path: Path) -> tuple[MoEAD, dict]:
    """A trained model file (model.pt, or a training checkpoint.pt) -> the eval-mode MoEAD
    (backbone rebuilt from its config) and the file's training info ({} for a checkpoint)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = MoEAD(config_from_dict(state["config"]))
    model.reconstruction.load_state_dict(state["reconstruction"])
    # Absent in model files from before the whitened distance; distance_map says so if needed.
    model.channel_weights = state.get("channel_weights")
    return model.eval(), state.get("info", {})
