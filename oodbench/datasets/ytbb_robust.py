"""YouTube-BB-Robust (Shankar et al.): 2,030 valid anchors, 24 classes (19 with ImageNet members).

Frames: ``ytbb-robust/ytbb_videos/<youtube id>_<anchor ms>/frame-<idx>.jpg`` (in
``imagenet_vid_ytbb_robust.tar.gz``). Review metadata (imagenet-testbed's ``ytbb-robust_metadata``):

- ``anchor_labels.json`` / ``pmk_labels.json``: ``{"labels": [names], "annotations": [{"key", "labels":
  [indices into names]}, ...]}``; the last annotation of a key wins. pm-k keys are ``"<anchor>,<frame>"``.
- ``ytbb_class_index.json`` (YTBB index -> name), ``rev_class_idx_map.json`` (YTBB index -> ImageNet
  indices), ``ytbb_robustness_test_anchors_full.csv`` (``ytid,time_ms,label``: the original YTBB label).

Validity rules (imagenet-testbed ``ytbb_robust.py``):
- anchor valid: labelled ``good``, not ``bad``/``unsure``, and not flagged ``bad-anchor`` in any pair review;
- neighbour valid (offset -10..10, 0 excluded): its pair is labelled ``similar`` and none of
  dissimilar, problematic, incorrect, dont know, deformation, background-change, occlusion-increased,
  blur-increase, bad-anchor;
- anchor label set = reviewed class labels + the original YTBB label (the CSV numbers 22 and 23 are
  swapped against ytbb_class_index.json; ``swap_csv_labels_22_23``, default true as imagenet-testbed);
- every neighbour is judged against its anchor's label set.
Classes without ImageNet members (cow, giraffe, skateboard, toilet, none) keep an empty member list:
they are never predicted, so anchors labelled only with them always count as wrong.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import pandas as pd

from oodbench.datasets.common import (
    IMAGES_DIR,
    DatasetLayoutError,
    apply_label_space,
    check_images,
    join_labels,
    single_archive,
    unpack_or_link,
)
from oodbench.datasets.manifest import staged_dataset_dir, write_manifest

log = logging.getLogger(__name__)

DEFAULT_MEMBERS_UNDER = "imagenet_vid_ytbb_robust/ytbb-robust"
FRAMES_DIR = "ytbb_videos"
METADATA_FILES = (
    "anchor_labels.json",
    "pmk_labels.json",
    "ytbb_class_index.json",
    "rev_class_idx_map.json",
    "ytbb_robustness_test_anchors_full.csv",
)
PROBLEMATIC = (
    "dissimilar",
    "problematic",
    "incorrect",
    "dont know",
    "deformation",
    "background-change",
    "occlusion-increased",
    "blur-increase",
    "bad-anchor",
)
PM_K = 10


def prepare(dest: Path, options: dict, archives=()) -> Path:
    source = Path(options.get("path") or single_archive(archives, "ytbb_robust"))
    under = options.get("members_under", DEFAULT_MEMBERS_UNDER)
    with staged_dataset_dir(dest) as staging:
        images = unpack_or_link(source, staging / IMAGES_DIR, members_under=under)
        metadata = read_metadata(images, options.get("metadata_dir"))
        frame = valid_frame_rows(
            metadata, swap_22_23=options.get("swap_csv_labels_22_23", True)
        )
        frame["path"] = [f"{IMAGES_DIR}/{FRAMES_DIR}/{key}" for key in frame["path"]]
        check_images(
            staging, frame["path"].tolist(), options.get("verify_images", "tail")
        )
        classes = {
            "dataset": options.get("name", "ytbb_robust"),
            "source": "ytbb-robust ytbb_class_index.json + rev_class_idx_map.json; classes without ImageNet members are never predicted",
            "classes": apply_label_space(
                ytbb_classes(metadata),
                options.get("label_space", "subset"),
                "ytbb_robust",
            ),
        }
        write_manifest(frame, classes, staging)
    return dest


# ----------------------------------------------------------------------------- metadata


def read_metadata(root: Path, metadata_dir: str | None = None) -> dict:
    """The five metadata files, from ``metadata_dir`` or from anywhere inside the dataset folder."""
    found = {}
    for name in METADATA_FILES:
        if metadata_dir:
            path = Path(metadata_dir).expanduser() / name
            found[name] = path if path.is_file() else None
        else:
            hits = sorted(p for p in root.rglob(name) if p.is_file())
            found[name] = hits[0] if hits else None
    missing = [name for name, path in found.items() if path is None]
    if missing:
        where = metadata_dir or root
        raise DatasetLayoutError(
            f"{where}: YTBB-Robust metadata {missing} not found. Set datasets.ytbb_robust.metadata_dir to a "
            "folder holding "
            + ", ".join(METADATA_FILES)
            + " (imagenet-testbed ships them in "
            "src/eval_settings/ytbb-robust_metadata; pmk_labels.json is stored there with Git LFS)."
        )
    return {name: path.read_text(encoding="utf-8") for name, path in found.items()}


def ytbb_classes(metadata: dict) -> list[dict]:
    index = json.loads(metadata["ytbb_class_index.json"])
    members = json.loads(metadata["rev_class_idx_map.json"])
    return [
        {
            "name": index[str(k)],
            "imagenet": sorted(int(m) for m in members.get(str(k), [])),
        }
        for k in range(len(index))
    ]


def _annotations(text: str, source: str) -> dict[str, set[str]]:
    """key -> set of label names; a key annotated several times keeps its last annotation."""
    document = json.loads(text)
    names = document["labels"]
    latest = {}
    for row in document["annotations"]:
        latest[row["key"]] = {names[i] for i in row["labels"]}
    log.info("%s: %d annotated keys", source, len(latest))
    return latest


def frame_key(path: str) -> str:
    """``.../<video>_<ms>/frame-<idx>.jpg`` -> ``<video>_<ms>/frame-<idx>.jpg``."""
    parts = Path(path.strip()).parts
    return "/".join(parts[-2:])


def _frame_index(key: str) -> int:
    name = key.split("/")[-1]
    if not (
        name.startswith("frame-")
        and name.endswith(".jpg")
        and name[6:-4].lstrip("-").isdigit()
    ):
        raise DatasetLayoutError(
            f"YTBB key {key!r} is not <video>_<ms>/frame-<idx>.jpg"
        )
    return int(name[6:-4])


def _initial_labels(text: str, swap_22_23: bool) -> dict[str, int]:
    swap = {22: 23, 23: 22} if swap_22_23 else {}
    labels = {}
    for row in csv.DictReader(io.StringIO(text)):
        label = int(row["label"])
        labels[f"{row['ytid']}_{row['time_ms']}"] = swap.get(label, label)
    return labels


def valid_anchors_and_pairs(metadata: dict) -> tuple[list[str], set[tuple[str, str]]]:
    """Valid anchor keys (sorted) and valid (anchor, neighbour) key pairs, by the rules above."""
    anchors = _annotations(metadata["anchor_labels.json"], "anchor_labels.json")
    pairs = _annotations(metadata["pmk_labels.json"], "pmk_labels.json")
    good = {
        frame_key(k)
        for k, labels in anchors.items()
        if "good" in labels and not labels & {"bad", "unsure"}
    }
    split = {k: tuple(frame_key(p) for p in k.split(",")) for k in pairs}
    bad_anchors = {split[k][0] for k, labels in pairs.items() if "bad-anchor" in labels}
    valid_pairs = {
        split[k]
        for k, labels in pairs.items()
        if "similar" in labels
        and not labels & set(PROBLEMATIC)
        and split[k][0] not in bad_anchors
    }
    return sorted(good - bad_anchors), valid_pairs


def anchor_label_sets(
    metadata: dict, anchors: list[str], swap_22_23: bool
) -> dict[str, set[int]]:
    annotations = {
        frame_key(k): v
        for k, v in _annotations(
            metadata["anchor_labels.json"], "anchor_labels.json"
        ).items()
    }
    index = json.loads(metadata["ytbb_class_index.json"])
    by_name = {name: int(k) for k, name in index.items()}
    initial = _initial_labels(
        metadata["ytbb_robustness_test_anchors_full.csv"], swap_22_23
    )
    result = {}
    for anchor in anchors:
        video = anchor.split("/")[0]
        if video not in initial:
            raise DatasetLayoutError(
                f"ytbb_robustness_test_anchors_full.csv: no original label for anchor {video}"
            )
        result[anchor] = {by_name[n] for n in annotations[anchor] if n in by_name} | {
            initial[video]
        }
    return result


def valid_frame_rows(metadata: dict, *, swap_22_23: bool = True) -> pd.DataFrame:
    """Manifest rows (path relative to ``ytbb_videos/``): each valid anchor, then its valid neighbours."""
    anchors, pairs = valid_anchors_and_pairs(metadata)
    labels = anchor_label_sets(metadata, anchors, swap_22_23)
    rows = []
    for anchor in anchors:
        video, index = anchor.split("/")[0], _frame_index(anchor)
        rows.append((anchor, anchor, 0))
        for offset in [o for o in range(-PM_K, PM_K + 1) if o]:
            neighbour = f"{video}/frame-{index + offset}.jpg"
            if (anchor, neighbour) in pairs:
                rows.append((neighbour, anchor, offset))
    frame = pd.DataFrame(rows, columns=["image_id", "anchor_id", "frame_offset"])
    frame["path"] = frame["image_id"]
    frame["label"] = join_labels(labels[a] for a in frame["anchor_id"])
    log.info("YTBB-Robust: %d valid anchors, %d frame rows", len(anchors), len(frame))
    return frame[["image_id", "path", "label", "anchor_id", "frame_offset"]]
