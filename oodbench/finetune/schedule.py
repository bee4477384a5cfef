"""The FixRes optimisation schedule of Appendix C, as pure arithmetic (no torch).

Appendix C: SGD with momentum 0.9; initial learning rate 0.004 (0.0004 for the BiT models)
multiplied by batch/256; 15,000 * batch/2048 steps; learning rate divided by 10 after 1/3 and
2/3 of the steps; no warm-up. The step count is taken literally as written in the paper (it
grows with the batch size); at the paper's usual batch of 2048 it is 15,000 steps.

Weight decay is not mentioned by the paper and is 0 here; see `FixResSchedule.weight_decay`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

BASE_LR_PER_256 = 0.004
BIT_BASE_LR_PER_256 = 0.0004
REFERENCE_STEPS = 15_000
REFERENCE_BATCH = 2048
MOMENTUM = 0.9
DECAY_FACTOR = 0.1
DECAY_FRACTIONS = (1 / 3, 2 / 3)

# timm names every BiT architecture resnetv2_<depth>x<width>_bit (e.g. resnetv2_101x3_bit).
_BIT_ARCH = re.compile(r"^resnetv2_\w*bit")


def is_bit_model(arch: str, flag: bool | None = None) -> bool:
    """BiT models get the 10x smaller learning rate; an explicit config flag wins over the name."""
    if flag is not None:
        return bool(flag)
    return bool(_BIT_ARCH.match(arch.split(".", 1)[0]))


@dataclass(frozen=True)
class FixResSchedule:
    """Learning rate per optimiser step; steps are 0-based and count full (effective) batches."""

    batch_size: int
    peak_lr: float
    total_steps: int
    momentum: float = MOMENTUM
    weight_decay: float = 0.0
    decay_factor: float = DECAY_FACTOR
    decay_steps: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"fixres batch_size must be >= 1, got {self.batch_size}")
        if self.total_steps < 1:
            raise ValueError(f"fixres steps must be >= 1, got {self.total_steps}")
        if self.peak_lr <= 0:
            raise ValueError(f"fixres learning rate must be > 0, got {self.peak_lr}")

    def lr_at(self, step: int) -> float:
        decays = sum(1 for boundary in self.decay_steps if step >= boundary)
        return self.peak_lr * self.decay_factor**decays

    def to_dict(self) -> dict:
        out = asdict(self)
        out["decay_steps"] = list(self.decay_steps)
        return out


def scaled_steps(batch_size: int) -> int:
    return max(1, round(REFERENCE_STEPS * batch_size / REFERENCE_BATCH))


def decay_boundaries(total_steps: int) -> tuple[int, ...]:
    return tuple(round(total_steps * fraction) for fraction in DECAY_FRACTIONS)


def fixres_schedule(
    batch_size: int = REFERENCE_BATCH,
    bit: bool = False,
    steps: int | None = None,
    base_lr_per_256: float | None = None,
) -> FixResSchedule:
    """The Appendix C schedule for an effective batch; `steps`/`base_lr_per_256` override it.

    Overrides exist for the demo (a few dozen CPU steps) and for users re-tuning; the decay
    points stay at 1/3 and 2/3 of whatever the step count is.
    """
    if base_lr_per_256 is None:
        base_lr_per_256 = BIT_BASE_LR_PER_256 if bit else BASE_LR_PER_256
    total = scaled_steps(batch_size) if steps is None else int(steps)
    return FixResSchedule(
        batch_size=int(batch_size),
        peak_lr=base_lr_per_256 * batch_size / 256,
        total_steps=total,
        decay_steps=decay_boundaries(total),
    )


def micro_batches(batch_size: int, micro_batch: int | None) -> list[int]:
    """Sizes of the accumulated micro-batches that make up one effective batch."""
    if micro_batch is None or micro_batch >= batch_size:
        return [batch_size]
    if micro_batch < 1:
        raise ValueError(f"fixres micro_batch must be >= 1, got {micro_batch}")
    full, rest = divmod(batch_size, micro_batch)
    return [micro_batch] * full + ([rest] if rest else [])
