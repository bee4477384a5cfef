"""FixRes fine-tuning: train at resolution r with the *test-time* preprocessing (Appendix C).

Pixels: every training image goes through exactly the geometric preprocessing the predict jobs
use at integer resolution r (`oodbench.preprocessing`: shorter side to floor(1.15 r), centre
crop r, the model's interpolation; then the model's mean/std) — no random-resized crop, no
colour augmentation, no label smoothing (Section 4.2). A horizontal flip is optional
(`hflip`, off by default): the paper does not mention one, and off keeps train and test pixels
identical, which is the point of FixRes.

Which parameters train (the paper does not say; `trainable`):

- ``all`` (default): every parameter, with batch-norm layers in training mode. Appendix C
  describes one SGD schedule for "the network" with a 15k-step (~24 ImageNet epochs at batch
  2048) budget and a 10x smaller rate for BiT — the profile of whole-network fine-tuning in the
  BiT lineage the paper's code base comes from, not of a linear-probe-sized problem.
- ``classifier_bn``: the FixRes paper's recipe (Touvron et al. 2019, Sec. 5): the classifier and
  the normalisation layer(s) that produce the pooled features. Only those modules run in
  training mode (their batch statistics adapt to the new resolution); everything else is frozen
  and in eval mode (so dropout before the classifier is off). The layers, per timm family:
    * ResNet (``timm.models.resnet.ResNet``): the norms feeding the last residual addition —
      ``layer4[-1].bn3`` (bottleneck) or ``.bn2`` (basic block), plus ``layer4[-1].downsample``'s
      norm when that block has a projection shortcut. For ResNet-50 this is ``layer4.2.bn3``,
      the layer FixRes adapts.
    * ResNetV2 / BiT (``ResNetV2``): the pre-head ``norm`` (GroupNorm+ReLU for BiT: it has no
      running statistics, only its affine parameters train).
    * EfficientNet (``EfficientNet``, incl. -Lite): ``bn2`` after ``conv_head``.
  Unlike FixRes's released code (which updates the running statistics of that layer but trains
  only the classifier), its affine parameters train too, as the FixRes paper's text says.

Batch: one optimiser step sees the schedule's effective batch, accumulated over micro-batches
weighted by their size, so the gradient equals the full batch's exactly for layers without batch
statistics. Batch-norm layers in training mode see micro-batch statistics, as per-device BN does
in the paper's own data-parallel setup (2048 images over 64 TPU cores = 32 per core).

Resumable: every `state_every` steps the model, optimiser, step and RNG states go to
``<out>.state.pt`` (hidden temp file + rename, `oodbench.atomic.replacing`); a restart with the
same settings continues from it and ends with the same weights as an uninterrupted run (the data
order is a pure function of seed and step, not of the loader's state).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oodbench.atomic import replacing, write_json
from oodbench.finetune.data import TrainingSet
from oodbench.finetune.schedule import FixResSchedule, micro_batches
from oodbench.preprocessing import Preprocessing, load_image

log = logging.getLogger(__name__)

TRAINABLE_CHOICES = ("all", "classifier_bn")
DEFAULT_TRAINABLE = "all"
STATE_FORMAT = 1


@dataclass(frozen=True)
class FineTuneSettings:
    resolution: int
    schedule: FixResSchedule
    micro_batch: int | None = None
    trainable: str = DEFAULT_TRAINABLE
    seed: int = 0
    hflip: bool = False
    state_every: int = 500
    num_workers: int = 4
    amp: str = "bfloat16"

    def __post_init__(self) -> None:
        if self.trainable not in TRAINABLE_CHOICES:
            raise ValueError(f"fixres trainable must be one of {TRAINABLE_CHOICES}, got {self.trainable!r}")
        if self.state_every < 1:
            raise ValueError(f"fixres state_every must be >= 1, got {self.state_every}")

    def fingerprint(self) -> dict:
        """What a saved state must agree on to be resumed (micro-batch and workers may change)."""
        return {
            "resolution": self.resolution,
            "schedule": self.schedule.to_dict(),
            "trainable": self.trainable,
            "seed": self.seed,
            "hflip": self.hflip,
        }


# ----------------------------------------------------------------------------- which layers train


def classifier_module(model: nn.Module) -> nn.Module:
    get = getattr(model, "get_classifier", None)
    if get is None:
        raise ValueError(
            f"{type(model).__name__} has no get_classifier(); trainable: classifier_bn needs a timm "
            "model — use trainable: all for this model"
        )
    return get()


def final_norm_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The normalisation layer(s) that produce the pooled features (see the module docstring)."""
    from timm.models.efficientnet import EfficientNet
    from timm.models.resnet import ResNet
    from timm.models.resnetv2 import ResNetV2

    if isinstance(model, ResNet):
        last = model.layer4[-1]
        residual = "bn3" if hasattr(last, "bn3") else "bn2"
        found = {f"layer4.{len(model.layer4) - 1}.{residual}": getattr(last, residual)}
        if last.downsample is not None:
            for name, module in last.downsample.named_modules():
                if _is_norm(module):
                    found[f"layer4.{len(model.layer4) - 1}.downsample.{name}"] = module
        return found
    if isinstance(model, ResNetV2):
        return {"norm": model.norm}
    if isinstance(model, EfficientNet):
        return {"bn2": model.bn2}
    raise ValueError(
        f"trainable: classifier_bn is defined for timm ResNet, ResNetV2 (BiT) and EfficientNet, "
        f"not for {type(model).__name__}; use trainable: all for this model"
    )


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm))


@dataclass(frozen=True)
class TrainablePlan:
    mode: str
    parameter_names: tuple[str, ...]
    train_mode_modules: tuple[str, ...]


def configure_trainable(model: nn.Module, mode: str) -> TrainablePlan:
    """Set requires_grad for `mode` and return what trains and which modules run in train mode."""
    if mode not in TRAINABLE_CHOICES:
        raise ValueError(f"fixres trainable must be one of {TRAINABLE_CHOICES}, got {mode!r}")
    if mode == "all":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return TrainablePlan(mode, tuple(n for n, _ in model.named_parameters()), ("",))
    modules = dict(final_norm_modules(model))
    classifier = classifier_module(model)
    modules.update({name: m for name, m in model.named_modules() if m is classifier})
    chosen = {id(p) for m in modules.values() for p in m.parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in chosen)
    names = tuple(n for n, p in model.named_parameters() if p.requires_grad)
    return TrainablePlan(mode, names, tuple(sorted(modules)))


def set_train_mode(model: nn.Module, plan: TrainablePlan) -> None:
    if plan.mode == "all":
        model.train()
        return
    model.eval()
    named = dict(model.named_modules())
    for name in plan.train_mode_modules:
        named[name].train()


# ----------------------------------------------------------------------------- data order


@functools.lru_cache(maxsize=2)
def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def sample_positions(seed: int, n: int, start: int, count: int) -> np.ndarray:
    """Dataset indices of stream positions [start, start+count): a fresh permutation per epoch."""
    positions = np.arange(start, start + count)
    epochs = positions // n
    out = np.empty(count, dtype=np.int64)
    for epoch in np.unique(epochs):
        mask = epochs == epoch
        out[mask] = epoch_order(seed, int(epoch), n)[positions[mask] % n]
    return out


def flip_flags(seed: int, start: int, count: int) -> np.ndarray:
    """Per-position coin flips, independent of the permutation and of the micro-batch split."""
    positions = np.arange(start, start + count, dtype=np.uint64)
    mixed = (positions * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed * 2 + 1)) >> np.uint64(32)
    return (mixed & np.uint64(1)).astype(bool)


def step_micro_batches(settings: FineTuneSettings, n: int, step: int, sizes: list[int]) -> list[list[tuple[int, bool]]]:
    """The (index, flip) pairs of each micro-batch of optimiser step `step`."""
    batch = settings.schedule.batch_size
    indices = sample_positions(settings.seed, n, step * batch, batch)
    flips = flip_flags(settings.seed, step * batch, batch) if settings.hflip else np.zeros(batch, dtype=bool)
    bounds = np.cumsum([0] + sizes)
    return [list(zip(indices[a:b].tolist(), flips[a:b].tolist())) for a, b in zip(bounds[:-1], bounds[1:])]


class _TrainImages(torch.utils.data.Dataset):
    """(index, flip) → (uint8 3×r×r, label); decoding shares the predict jobs' code path."""

    def __init__(self, train_set: TrainingSet, geometry: dict):
        self.paths = train_set.paths
        self.labels = train_set.labels
        self.geometry = geometry

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, key):
        index, flip = key
        image = load_image(Path(self.paths[index]), self.geometry)
        if flip:
            image = torch.flip(image, dims=[-1])
        return image, int(self.labels[index])


class _StepSampler:
    """Yields the micro-batches of steps start..total-1, in order (a batch_sampler)."""

    def __init__(self, settings, n, start, sizes):
        self.settings, self.n, self.start, self.sizes = settings, n, start, sizes

    def __iter__(self):
        for step in range(self.start, self.settings.schedule.total_steps):
            yield from step_micro_batches(self.settings, self.n, step, self.sizes)

    def __len__(self):
        return (self.settings.schedule.total_steps - self.start) * len(self.sizes)


def geometry_of(preprocessing: Preprocessing) -> dict:
    keys = ("crop", "resize", "interpolation", "backend", "border_crop")
    return {key: getattr(preprocessing, key) for key in keys}


# ----------------------------------------------------------------------------- loss


class ClassSetLoss(nn.Module):
    """-log P(class) with P(class) = sum of the 1000-way softmax over the class's ImageNet members.

    For 1000 singleton classes in logit order (ImageNet) this is the ordinary cross-entropy; for
    superclasses (the demo) it is the likelihood of "any member", matching how they are scored.
    """

    def __init__(self, members: list[list[int]], num_logits: int = 1000):
        super().__init__()
        self.identity = members == [[i] for i in range(num_logits)]
        mask = torch.zeros(len(members), num_logits, dtype=torch.bool)
        for k, indices in enumerate(members):
            mask[k, indices] = True
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.identity:
            return F.cross_entropy(logits, labels)
        members = self.mask[labels]
        in_class = torch.logsumexp(logits.masked_fill(~members, float("-inf")), dim=1)
        return (torch.logsumexp(logits, dim=1) - in_class).mean()


# ----------------------------------------------------------------------------- state files


def state_path_for(out_path: Path) -> Path:
    return out_path.with_suffix(".state.pt")


def sidecar_path_for(out_path: Path) -> Path:
    return out_path.with_suffix(".json")


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_state(path, model, optimizer, step, losses, fingerprint, device) -> None:
    state = {
        "format": STATE_FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "losses": list(losses),
        "rng": _rng_state(device),
        "fingerprint": json.dumps(fingerprint, sort_keys=True),
    }
    with replacing(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def load_state(path: Path, fingerprint: dict) -> dict | None:
    """The saved state when it belongs to this run; None when absent; an error when it does not."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    expected = json.dumps(fingerprint, sort_keys=True)
    if state.get("format") != STATE_FORMAT or state.get("fingerprint") != expected:
        raise RuntimeError(
            f"{path}: this saved fine-tuning state belongs to another configuration "
            f"(saved {state.get('fingerprint')}, now {expected}); delete it to start over"
        )
    return state


# ----------------------------------------------------------------------------- training loop


def _amp_context(device: torch.device, amp: str):
    if device.type == "cuda" and amp in ("bfloat16", "float16"):
        return torch.autocast(device_type="cuda", dtype=getattr(torch, amp))
    return torch.autocast(device_type=device.type, enabled=False)


def fine_tune(
    model: nn.Module,
    train_set: TrainingSet,
    preprocessing: Preprocessing,
    settings: FineTuneSettings,
    out_path: str | os.PathLike,
    provenance: dict,
    device: str = "cpu",
    progress=None,
) -> dict:
    """Fine-tune `model` in place and write ``out_path`` (.pth) and its sidecar JSON atomically.

    ``provenance`` describes the base model and data (name, weights digest, ...); the run's own
    settings, step count and versions are added. Returns the final provenance.
    """
    from oodbench.inference import Normalizer
    from oodbench.logits_file import package_versions

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    fingerprint = {**settings.fingerprint(), "base_weights_digest": provenance.get("base_weights_digest"),
                   "data_manifest_digest": train_set.digest, "preprocessing": preprocessing.to_json()}
    torch.manual_seed(settings.seed)
    model.to(device)
    plan = configure_trainable(model, settings.trainable)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        parameters,
        lr=settings.schedule.lr_at(0),
        momentum=settings.schedule.momentum,
        weight_decay=settings.schedule.weight_decay,
    )
    state_path = state_path_for(out_path)
    start_step, losses = 0, []
    state = load_state(state_path, fingerprint)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _restore_rng(state["rng"], device)
        start_step, losses = int(state["step"]), list(state["losses"])
        log.info("resuming from %s at step %d of %d", state_path, start_step, settings.schedule.total_steps)

    criterion = ClassSetLoss(train_set.members).to(device)
    normalizer = Normalizer(preprocessing.mean, preprocessing.std, device, torch.float32)
    started = time.perf_counter()
    run = _RunProgress(step=start_step, losses=losses, micro=settings.micro_batch)
    while run.step < settings.schedule.total_steps:
        try:
            _run_steps(model, plan, optimizer, criterion, normalizer, train_set, preprocessing, settings,
                       run, state_path, fingerprint, device, progress)
        except torch.OutOfMemoryError:
            # The failed step never reached optimizer.step(), so it is redone from zero gradients
            # with smaller micro-batches; the effective batch (and so the update) is unchanged.
            if (run.micro or settings.schedule.batch_size) == 1:
                raise
            run.micro = max(1, (run.micro or settings.schedule.batch_size) // 2)
            log.warning("out of memory: redoing step %d with micro-batch %d", run.step, run.micro)
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    losses, micro = run.losses, run.micro

    model.eval()
    final = {
        **provenance,
        "resolution": settings.resolution,
        "preprocessing": json.loads(preprocessing.to_json()),
        "schedule": settings.schedule.to_dict(),
        "steps": settings.schedule.total_steps,
        "effective_batch": settings.schedule.batch_size,
        "micro_batch": micro or settings.schedule.batch_size,
        "trainable": settings.trainable,
        "trained_parameters": list(plan.parameter_names) if plan.mode != "all" else "all",
        "num_trained_parameters": int(sum(p.numel() for p in parameters)),
        "train_mode_modules": list(plan.train_mode_modules),
        "hflip": settings.hflip,
        "seed": settings.seed,
        "data_manifest": str(train_set.manifest),
        "data_manifest_digest": train_set.digest,
        "num_train_images": len(train_set),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "losses_every_step": losses,
        "versions": package_versions(),
        "device": str(device),
        "wall_s_this_run": round(time.perf_counter() - started, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_checkpoint(model, final, out_path)
    state_path.unlink(missing_ok=True)
    return final


@dataclass
class _RunProgress:
    step: int
    losses: list
    micro: int | None


def _run_steps(model, plan, optimizer, criterion, normalizer, train_set, preprocessing, settings,
               run, state_path, fingerprint, device, progress) -> None:
    """Steps run.step..total-1 with one DataLoader, advancing `run` after each optimiser step."""
    schedule = settings.schedule
    sizes = micro_batches(schedule.batch_size, run.micro)
    loader = torch.utils.data.DataLoader(
        _TrainImages(train_set, geometry_of(preprocessing)),
        batch_sampler=_StepSampler(settings, len(train_set), run.step, sizes),
        num_workers=settings.num_workers,
        pin_memory=device.type == "cuda",
    )
    batches = iter(loader)
    bar = progress(total=schedule.total_steps, initial=run.step, unit="step", mininterval=10) if progress else None
    set_train_mode(model, plan)
    try:
        for step in range(run.step, schedule.total_steps):
            step_loss = _one_step(model, optimizer, criterion, normalizer, batches, sizes, schedule, step, settings.amp, device)
            run.losses.append(step_loss)
            run.step = step + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}", lr=f"{schedule.lr_at(step):.2e}", refresh=False)
            if run.step % settings.state_every == 0 and run.step < schedule.total_steps:
                save_state(state_path, model, optimizer, run.step, run.losses, fingerprint, device)
    finally:
        if bar is not None:
            bar.close()


def _one_step(model, optimizer, criterion, normalizer, batches, sizes, schedule, step, amp, device) -> float:
    """One optimiser step over the micro-batches of one effective batch; returns its mean loss."""
    for group in optimizer.param_groups:
        group["lr"] = schedule.lr_at(step)
    optimizer.zero_grad(set_to_none=True)
    step_loss = 0.0
    for size in sizes:
        images, labels = next(batches)
        images = normalizer(images.to(device, non_blocking=True))
        labels = labels.to(device, non_blocking=True)
        with _amp_context(device, amp):
            # Weighting by size/batch makes the summed gradients those of the full-batch mean.
            loss = criterion(model(images), labels) * (size / schedule.batch_size)
        loss.backward()
        step_loss += float(loss.detach())
    if not math.isfinite(step_loss):
        raise FloatingPointError(f"loss is {step_loss} at step {step}; lower the learning rate (fixres lr)")
    optimizer.step()
    return step_loss


def write_checkpoint(model: nn.Module, provenance: dict, out_path: Path) -> None:
    """Sidecar JSON first, then the .pth (the DAG's output) by rename: nothing partial looks done.

    The .pth holds ``{"state_dict", "provenance"}``; timm's file loader picks ``state_dict``.
    Provenance is stored as a JSON string so ``torch.load(weights_only=True)`` accepts it.
    """
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    text = json.dumps(provenance, indent=1, sort_keys=True, default=str)
    # The sidecar holds the same content (parsed back, so anything `default=str` caught is a string).
    write_json(json.loads(text), sidecar_path_for(out_path))
    with replacing(out_path, suffix=".pth") as tmp:
        torch.save({"state_dict": state_dict, "provenance": text}, tmp)


def read_provenance(path: str | os.PathLike) -> dict:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return json.loads(checkpoint["provenance"])
