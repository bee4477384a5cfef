"""Factor-of-variation grids (the paper's Table 1, Appendix D) from the ``synthetic:`` config.

Each factor (``size``, ``location``, ``rotation``) is the full cross product of its object areas,
rotation angles and centre positions, in that nesting order (positions vary fastest, row-major:
``y`` outer, ``x`` inner). Config values are lists or inclusive ranges ``{start, stop, step}``;
areas are given in percent of the canvas.

Positions: ``centre`` (the single point (0.5, 0.5)) or ``{divisions: n, placement: ...}``.
``placement: centres`` puts the object centre at the centres of an n x n grid of equal cells,
``(i + 0.5) / n`` -- the paper's text ("dividing the x- and y-coordinate dimensions into 20 equal
parts each, for a total of 400 coordinate locations"). ``placement: edges`` uses ``i / n`` for
``i = 0..n``, the ``(n + 1)^2`` points of the authors' released generator config (0..1 step 0.05,
441 locations for n = 20).

Backgrounds: each object gets ``backgrounds_per_object`` distinct backgrounds, drawn without
replacement by a generator seeded with ``(seed, crc32(object_id))`` -- the draw of one object
does not change when objects are added or removed, and all factors use the same pairs.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# The keys of a factor entry that decide which images exist (all composition reads); the
# others (group_by, normalise_quantile) only say how the analysis groups and normalises them.
GRID_KEYS = ("area_percent", "angle", "position", "min_visible")
GROUP_COLUMNS = ("area", "x", "y", "angle")
PLACEMENTS = ("centres", "edges")


class GridConfigError(ValueError):
    """A ``synthetic:`` config entry that does not describe a grid; the message names the key."""


@dataclass(frozen=True)
class FactorSpec:
    """One factor's grid and how its images are filtered, grouped and normalised."""

    name: str
    areas: tuple[float, ...]
    angles: tuple[float, ...]
    positions: tuple[tuple[float, float], ...]
    min_visible: float
    group_by: tuple[str, ...]
    normalise_quantile: float

    @property
    def grid_size(self) -> int:
        return len(self.areas) * len(self.angles) * len(self.positions)


def expand_values(spec, key: str) -> list[float]:
    """A list as given, or the inclusive range ``{start, stop, step}`` (no float drift)."""
    if isinstance(spec, Mapping):
        missing = [k for k in ("start", "stop", "step") if k not in spec]
        if missing:
            raise GridConfigError(f"synthetic.{key}: range needs keys start, stop, step; missing {missing}")
        start, stop, step = float(spec["start"]), float(spec["stop"]), float(spec["step"])
        if step <= 0 or stop < start:
            raise GridConfigError(f"synthetic.{key}: need step > 0 and stop >= start, got {dict(spec)}")
        count = int(np.floor((stop - start) / step + 1e-9)) + 1
        values = start + step * np.arange(count)
        return [float(v) for v in np.round(values, 10)]
    if isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) > 0:
        return [float(v) for v in spec]
    raise GridConfigError(f"synthetic.{key}: expected a non-empty list or {{start, stop, step}}, got {spec!r}")


def expand_positions(spec, key: str) -> list[tuple[float, float]]:
    """``centre``, ``{divisions, placement}`` or an explicit list of ``[x, y]`` points."""
    if spec == "centre":
        return [(0.5, 0.5)]
    if isinstance(spec, Mapping):
        divisions = spec.get("divisions")
        placement = spec.get("placement", "centres")
        if not isinstance(divisions, int) or divisions < 1:
            raise GridConfigError(f"synthetic.{key}.divisions: expected a positive integer, got {divisions!r}")
        if placement == "centres":
            steps = (np.arange(divisions) + 0.5) / divisions
        elif placement == "edges":
            steps = np.arange(divisions + 1) / divisions
        else:
            raise GridConfigError(f"synthetic.{key}.placement: expected one of {PLACEMENTS}, got {placement!r}")
        steps = np.round(steps, 10)
        return [(float(x), float(y)) for y in steps for x in steps]
    if isinstance(spec, Sequence) and not isinstance(spec, str) and spec:
        points = [tuple(float(v) for v in point) for point in spec]
        if any(len(p) != 2 for p in points):
            raise GridConfigError(f"synthetic.{key}: explicit positions must be [x, y] pairs")
        return points
    raise GridConfigError(
        f"synthetic.{key}: expected 'centre', {{divisions, placement}} or a list of [x, y], got {spec!r}"
    )


def factor_spec(name: str, entry: Mapping, grid_only: bool = False) -> FactorSpec:
    """Parse ``synthetic.factors.<name>``; ``grid_only``: without the analysis keys (composition
    reads only ``GRID_KEYS``; the spec then has no ``group_by``)."""
    key = f"factors.{name}"
    for required in GRID_KEYS if grid_only else (*GRID_KEYS, "group_by"):
        if required not in entry:
            raise GridConfigError(f"synthetic.{key}: missing key '{required}'")
    areas = [round(p / 100.0, 10) for p in expand_values(entry["area_percent"], f"{key}.area_percent")]
    if any(not 0 < a for a in areas):
        raise GridConfigError(f"synthetic.{key}.area_percent: areas must be > 0")
    group_by = () if grid_only else tuple(entry["group_by"])
    unknown = [c for c in group_by if c not in GROUP_COLUMNS]
    if unknown or not (group_by or grid_only):
        raise GridConfigError(f"synthetic.{key}.group_by: expected a non-empty subset of {GROUP_COLUMNS}, got {group_by}")
    min_visible = float(entry["min_visible"])
    if not 0.0 <= min_visible <= 1.0:
        raise GridConfigError(f"synthetic.{key}.min_visible must be in [0, 1], got {min_visible}")
    quantile = float(entry.get("normalise_quantile", 1.0))
    if not 0.0 < quantile <= 1.0:
        raise GridConfigError(f"synthetic.{key}.normalise_quantile must be in (0, 1], got {quantile}")
    return FactorSpec(
        name=name,
        areas=tuple(areas),
        angles=tuple(expand_values(entry["angle"], f"{key}.angle")),
        positions=tuple(expand_positions(entry["position"], f"{key}.position")),
        min_visible=min_visible,
        group_by=group_by,
        normalise_quantile=quantile,
    )


def factor_specs(synthetic: Mapping, grid_only: bool = False) -> dict[str, FactorSpec]:
    """All factors of the ``synthetic:`` config block."""
    factors = synthetic.get("factors")
    if not isinstance(factors, Mapping) or not factors:
        raise GridConfigError("synthetic.factors: expected a mapping of factor name -> grid")
    return {name: factor_spec(name, entry, grid_only) for name, entry in factors.items()}


def factor_grid(spec: FactorSpec) -> pd.DataFrame:
    """One row per factor combination: ``grid_index, area, x, y, angle``."""
    areas = np.repeat(spec.areas, len(spec.angles) * len(spec.positions))
    angles = np.tile(np.repeat(spec.angles, len(spec.positions)), len(spec.areas))
    positions = np.tile(np.asarray(spec.positions, dtype=float), (len(spec.areas) * len(spec.angles), 1))
    return pd.DataFrame(
        {
            "grid_index": np.arange(spec.grid_size),
            "area": areas,
            "x": positions[:, 0],
            "y": positions[:, 1],
            "angle": angles,
        }
    )


def sample_backgrounds(
    object_ids: Sequence[str], background_ids: Sequence[str], per_object: int, seed: int
) -> pd.DataFrame:
    """``object_id, background_slot, background_id``: ``per_object`` distinct backgrounds each."""
    ordered = sorted(background_ids)
    if per_object > len(ordered):
        raise GridConfigError(
            f"synthetic.backgrounds_per_object = {per_object} but only {len(ordered)} background(s) "
            "are prepared; add backgrounds or lower the setting"
        )
    rows = []
    for object_id in object_ids:
        rng = np.random.default_rng([int(seed), zlib.crc32(str(object_id).encode("utf-8"))])
        chosen = rng.choice(len(ordered), size=per_object, replace=False)
        rows.extend((object_id, slot, ordered[i]) for slot, i in enumerate(chosen))
    return pd.DataFrame(rows, columns=["object_id", "background_slot", "background_id"])


def expected_count(spec: FactorSpec, num_objects: int, backgrounds_per_object: int) -> int:
    """Images before the visible-fraction filter: objects x backgrounds x grid."""
    return num_objects * backgrounds_per_object * spec.grid_size
