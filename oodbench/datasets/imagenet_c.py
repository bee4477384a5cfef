"""ImageNet-C: the 15 benchmark corruptions (and 4 extras) x 5 severities, plus mCE.

Two ways to get the images, kept as two datasets so their scores never mix:

- ``imagenet_c`` (:func:`prepare`): the Zenodo release (record 2235448), ``noise.tar``, ``blur.tar``,
  ``weather.tar``, ``digital.tar`` and optionally ``extra.tar``; layout
  ``<corruption>/<severity>/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG`` (224x224 JPEGs, quality 85).
  This is imagenet-testbed's "on-disk" family.
- ``imagenet_c_generated`` (:func:`prepare_generated`): regenerated from the prepared ImageNet
  validation set with ``imagecorruptions-imaug`` (Resize 256 -> CenterCrop 224 -> corruption -> JPEG
  q85, seeded per image). Statistically similar to the release, **not** identical (motion blur and
  snow are re-implemented, the RNG differs); classes.json ``source`` and the manifest column
  ``generator`` say so.

mCE (Hendrycks & Dietterich 2019): CE_c = sum_s E_{s,c} / sum_s E^AlexNet_{s,c}, mCE = mean over the 15
benchmark corruptions; relative CE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^AlexNet_{s,c} - E^AlexNet_clean).
"""

from __future__ import annotations

import logging
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.datasets.common import (
    IMAGES_DIR,
    DatasetLayoutError,
    check_images,
    imagenet_indices,
    singleton_classes,
    unpack_or_link,
)
from oodbench.datasets.download import extract_archive
from oodbench.datasets.manifest import read_manifest, staged_dataset_dir, write_manifest

log = logging.getLogger(__name__)

GROUPS = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
    "extra": ("speckle_noise", "gaussian_blur", "spatter", "saturate"),
}
BENCHMARK = tuple(
    c for group in ("noise", "blur", "weather", "digital") for c in GROUPS[group]
)
EXTRA = GROUPS["extra"]
SEVERITIES = (1, 2, 3, 4, 5)
ZENODO_MD5 = {
    "noise": "e80562d7f6c3f8834afb1ecf27252745",
    "blur": "2d8e81fdd8e07fef67b9334fa635e45c",
    "weather": "33ffea4db4d93fe4a428c40a6ce0c25d",
    "digital": "89157860d7b10d5797849337ca2e5c03",
    "extra": "d492dfba5fc162d8ec2c3cd8ee672984",
}

# AlexNet top-1 error per corruption, averaged over the 5 severities (Hendrycks & Dietterich 2019,
# appendix; the precise values used by AugMix and others). robustness_metrics stores 3 decimals.
ALEXNET_ERRORS = {
    "precise": {
        "gaussian_noise": 0.886428,
        "shot_noise": 0.894468,
        "impulse_noise": 0.922640,
        "defocus_blur": 0.819880,
        "glass_blur": 0.826268,
        "motion_blur": 0.785948,
        "zoom_blur": 0.798360,
        "snow": 0.866816,
        "frost": 0.826572,
        "fog": 0.819324,
        "brightness": 0.564592,
        "contrast": 0.853204,
        "elastic_transform": 0.646056,
        "pixelate": 0.717840,
        "jpeg_compression": 0.606500,
    },
    "rounded": {
        "gaussian_noise": 0.886,
        "shot_noise": 0.894,
        "impulse_noise": 0.923,
        "defocus_blur": 0.820,
        "glass_blur": 0.826,
        "motion_blur": 0.786,
        "zoom_blur": 0.798,
        "snow": 0.867,
        "frost": 0.827,
        "fog": 0.819,
        "brightness": 0.565,
        "contrast": 0.853,
        "elastic_transform": 0.646,
        "pixelate": 0.718,
        "jpeg_compression": 0.607,
    },
}
ALEXNET_CLEAN_ERROR = 0.4348
_SUBSET = re.compile(r"^corruption=(?P<corruption>[a-z_]+),severity=(?P<severity>\d)$")


def selected_corruptions(options: dict) -> list[str]:
    """``corruptions`` (default: the 15 benchmark ones) plus the 4 extras when ``include_extra``."""
    chosen = list(options.get("corruptions") or BENCHMARK)
    if options.get("include_extra", False):
        chosen += [c for c in EXTRA if c not in chosen]
    unknown = [c for c in chosen if c not in BENCHMARK + EXTRA]
    if unknown:
        raise ValueError(
            f"datasets.imagenet_c.corruptions: unknown {unknown}; valid: {list(BENCHMARK + EXTRA)}"
        )
    return chosen


# ----------------------------------------------------------------------------- the release


def prepare(dest: Path, options: dict, archives=()) -> Path:
    """``archives``: the downloaded Zenodo tars (``<group>.tar``); or ``options['path']``: a folder
    already holding ``<corruption>/<severity>/<wnid>/*.JPEG``."""
    corruptions = selected_corruptions(options)
    severities = [int(s) for s in options.get("severities") or SEVERITIES]
    with staged_dataset_dir(dest) as staging:
        images = staging / IMAGES_DIR
        if options.get("path"):
            unpack_or_link(Path(options["path"]), images)
        else:
            images.mkdir()
            for archive in archives:
                extract_archive(archive, images / Path(archive).name.split(".")[0])
        roots = _corruption_roots(images, corruptions)
        frame = _scan_release(images, roots, corruptions, severities)
        check_images(
            staging, frame["path"].tolist(), options.get("verify_images", "tail")
        )
        classes = {
            "dataset": options.get("name", "imagenet_c"),
            "source": "ImageNet-C Zenodo release 2235448 (Hendrycks & Dietterich 2019); classes = sorted wnids",
            "classes": singleton_classes(range(1000)),
        }
        write_manifest(frame, classes, staging)
    return dest


def _corruption_roots(images: Path, corruptions: list[str]) -> dict[str, Path]:
    """Folder of each corruption: ``images/<c>`` or ``images/<group>/<c>``."""
    roots, missing = {}, []
    for corruption in corruptions:
        hits = [
            p
            for p in (images / corruption, *images.glob(f"*/{corruption}"))
            if p.is_dir()
        ]
        if hits:
            roots[corruption] = hits[0]
        else:
            missing.append(corruption)
    if missing:
        raise DatasetLayoutError(
            f"{images}: no folder for corruption(s) {missing} (expected <corruption>/<severity>/<wnid>/*.JPEG; "
            "the extras need extra.tar)"
        )
    return roots


def _scan_release(
    images: Path, roots: dict[str, Path], corruptions: list[str], severities: list[int]
) -> pd.DataFrame:
    parts = []
    for corruption in corruptions:
        for severity in severities:
            folder = roots[corruption] / str(severity)
            files = sorted(folder.glob("n*/*"), key=lambda p: (p.name, p.parent.name))
            files = [f for f in files if f.is_file()]
            if not files:
                raise DatasetLayoutError(
                    f"{folder}: no images (expected <wnid>/ILSVRC2012_val_*.JPEG)"
                )
            parts.append(
                pd.DataFrame(
                    {
                        "image_id": [
                            f"{corruption}/{severity}/{f.stem}" for f in files
                        ],
                        "path": [
                            f"{IMAGES_DIR}/{f.relative_to(images).as_posix()}"
                            for f in files
                        ],
                        "label": imagenet_indices(
                            [f.parent.name for f in files], str(folder)
                        ),
                        "corruption": corruption,
                        "severity": severity,
                    }
                )
            )
    frame = pd.concat(parts, ignore_index=True)
    log.info(
        "ImageNet-C: %d images, %d corruptions x %d severities",
        len(frame),
        len(corruptions),
        len(severities),
    )
    return frame


# ----------------------------------------------------------------------------- regeneration


def prepare_generated(dest: Path, options: dict, archives=()) -> Path:
    """Corrupt every image of the prepared ImageNet validation set (``options['imagenet_dir']``,
    default ``data/imagenet``) for each selected (corruption, severity)."""
    import imagecorruptions

    imagenet_dir = Path(options.get("imagenet_dir", "data/imagenet"))
    source = read_manifest(imagenet_dir / "manifest.csv", check_files=False)
    limit = options.get("images_per_corruption")
    if limit:
        source = source.iloc[: int(limit)]
    corruptions = selected_corruptions(options)
    severities = [int(s) for s in options.get("severities") or SEVERITIES]
    seed = int(options.get("seed", 0))
    version = _package_version("imagecorruptions-imaug")
    generator = f"imagecorruptions-imaug {version}, seed {seed}"
    wnids = [entry["name"] for entry in _imagenet_classes(imagenet_dir)]
    with staged_dataset_dir(dest) as staging:
        jobs, parts = [], []
        for c_index, corruption in enumerate(corruptions):
            for severity in severities:
                stems = source["image_id"].astype(str)
                labels = source["label"].astype(int)
                relative = [
                    f"{IMAGES_DIR}/{corruption}/{severity}/{wnids[k]}/{stem}.JPEG"
                    for k, stem in zip(labels, stems, strict=True)
                ]
                jobs += [
                    (
                        str(imagenet_dir / src),
                        str(staging / dst),
                        corruption,
                        severity,
                        _image_seed(
                            seed,
                            imagecorruptions.get_corruption_names("all").index(
                                corruption
                            ),
                            severity,
                            row,
                        ),
                    )
                    for row, (src, dst) in enumerate(
                        zip(source["path"], relative, strict=True)
                    )
                ]
                parts.append(
                    pd.DataFrame(
                        {
                            "image_id": [f"{corruption}/{severity}/{s}" for s in stems],
                            "path": relative,
                            "label": labels.to_numpy(),
                            "corruption": corruption,
                            "severity": severity,
                            "generator": generator,
                        }
                    )
                )
        _run_corruptions(jobs, int(options.get("workers") or os.cpu_count() or 1))
        classes = {
            "dataset": options.get("name", "imagenet_c_generated"),
            "source": (
                f"GENERATED from {imagenet_dir} with {generator} (Resize 256, CenterCrop 224, JPEG q85); "
                "NOT identical to the ImageNet-C Zenodo release"
            ),
            "classes": singleton_classes(range(1000)),
        }
        write_manifest(pd.concat(parts, ignore_index=True), classes, staging)
    return dest


def _imagenet_classes(imagenet_dir: Path) -> list[dict]:
    from oodbench.datasets.manifest import read_classes

    return read_classes(imagenet_dir / "classes.json")["classes"]


def _image_seed(seed: int, corruption_index: int, severity: int, row: int) -> int:
    """Independent, reproducible seed per image, whatever the worker or order."""
    return int(
        np.random.SeedSequence([seed, corruption_index, severity, row]).generate_state(
            1
        )[0]
    )


def _run_corruptions(jobs: list[tuple], workers: int) -> None:
    log.info("generating %d corrupted images with %d worker(s)", len(jobs), workers)
    if workers <= 1:
        for count, job in enumerate(jobs, 1):
            _corrupt_one(job)
            if count % 5000 == 0:
                log.info("%d of %d images written", count, len(jobs))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for count, _ in enumerate(pool.map(_corrupt_one, jobs, chunksize=64), 1):
            if count % 5000 == 0:
                log.info("%d of %d images written", count, len(jobs))


def _corrupt_one(job: tuple) -> None:
    from imagecorruptions import corrupt
    from PIL import Image
    from torchvision.transforms import functional as F

    src, dst, corruption, severity, seed = job
    np.random.seed(seed)
    with Image.open(src) as image:
        image = F.center_crop(F.resize(image.convert("RGB"), 256), 224)
    kwargs = {"seed": seed} if corruption in ("impulse_noise", "glass_blur") else {}
    corrupted = corrupt(
        np.asarray(image), severity=severity, corruption_name=corruption, **kwargs
    )
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(corrupted).save(dst, format="JPEG", quality=85)


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------------------- mCE


def corruption_error_rows(
    scores: pd.DataFrame,
    clean_top1: float | None = None,
    *,
    alexnet: str = "precise",
) -> pd.DataFrame:
    """CE / relative CE per benchmark corruption and their means, as tidy score rows.

    ``scores``: tidy rows with ``metric == "top1"`` and ``subset == "corruption=<c>,severity=<s>"``
    (other rows are ignored); every benchmark corruption needs all 5 severities. ``clean_top1``: the
    model's ImageNet top-1 (fraction); without it the relative rows are left out. ``alexnet``:
    ``precise`` (6 decimals, default) or ``rounded`` (robustness_metrics' 3 decimals).

    Returns rows ``metric, subset, value, n`` with metric ``ce`` / ``relative_ce`` (subset
    ``corruption=<c>``) and ``mce`` / ``relative_mce`` (subset ``all``); ``n`` = images behind the value.
    """
    if alexnet not in ALEXNET_ERRORS:
        raise ValueError(
            f"alexnet: expected one of {sorted(ALEXNET_ERRORS)}, got {alexnet!r}"
        )
    table = _corruption_top1(scores)
    errors = 1.0 - table["value"].to_numpy(dtype=float)
    table = table.assign(error=errors)
    per_corruption = table.groupby("corruption").agg(
        error=("error", "mean"), n=("n", "sum")
    )
    reference = pd.Series(ALEXNET_ERRORS[alexnet]).loc[list(BENCHMARK)]
    mean_error = per_corruption.loc[list(BENCHMARK), "error"]
    counts = per_corruption.loc[list(BENCHMARK), "n"].astype(int)
    ce = mean_error / reference
    rows = [
        {
            "metric": "ce",
            "subset": f"corruption={c}",
            "value": float(ce[c]),
            "n": int(counts[c]),
        }
        for c in BENCHMARK
    ]
    rows.append(
        {
            "metric": "mce",
            "subset": "all",
            "value": float(ce.mean()),
            "n": int(counts.sum()),
        }
    )
    if clean_top1 is not None:
        relative = (mean_error - (1.0 - float(clean_top1))) / (
            reference - ALEXNET_CLEAN_ERROR
        )
        rows += [
            {
                "metric": "relative_ce",
                "subset": f"corruption={c}",
                "value": float(relative[c]),
                "n": int(counts[c]),
            }
            for c in BENCHMARK
        ]
        rows.append(
            {
                "metric": "relative_mce",
                "subset": "all",
                "value": float(relative.mean()),
                "n": int(counts.sum()),
            }
        )
    return pd.DataFrame(rows, columns=["metric", "subset", "value", "n"])


def _corruption_top1(scores: pd.DataFrame) -> pd.DataFrame:
    """The per-(corruption, severity) top-1 rows, checked complete for the benchmark corruptions."""
    top1 = scores[scores["metric"] == "top1"]
    parsed = top1["subset"].astype(str).str.extract(_SUBSET)
    keep = parsed["corruption"].notna()
    table = pd.DataFrame(
        {
            "corruption": parsed.loc[keep, "corruption"],
            "severity": parsed.loc[keep, "severity"].astype(int),
            "value": top1.loc[keep, "value"].astype(float),
            "n": top1.loc[keep, "n"] if "n" in top1 else 0,
        }
    )
    duplicated = table.duplicated(["corruption", "severity"])
    if duplicated.any():
        raise ValueError(
            f"mCE: duplicate top1 rows for {table.loc[duplicated, ['corruption', 'severity']].values[:3].tolist()}"
        )
    present = set(zip(table["corruption"], table["severity"], strict=True))
    missing = [
        f"{c}/{s}" for c in BENCHMARK for s in SEVERITIES if (c, s) not in present
    ]
    if missing:
        raise ValueError(
            f"mCE needs top1 for all 15 benchmark corruptions x 5 severities; missing {len(missing)}, "
            f"e.g. {missing[:5]} (subset 'corruption=<c>,severity=<s>')"
        )
    return table[table["corruption"].isin(BENCHMARK)]
