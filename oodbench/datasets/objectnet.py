"""ObjectNet 1.0: the 113 classes that overlap ImageNet (125 ImageNet classes), set-membership accuracy.

Manual download (licence agreement): ``objectnet-1.0.zip``, password-protected. Layout:
``objectnet-1.0/images/<folder>/<id>.png`` and ``objectnet-1.0/mappings/`` with
``folder_to_objectnet_label.json`` (folder -> ObjectNet name), ``objectnet_to_imagenet_1k.json``
(ObjectNet name -> "; "-separated ImageNet names), ``imagenet_to_label_2012_v2`` (one ImageNet name
per line) and ``pytorch_to_imagenet_2012_id.json`` (sorted-wnid index -> line number).

Classes follow the iteration order of ``objectnet_to_imagenet_1k.json`` (as imagenet-testbed); each
class's members are its ImageNet indices, so "max over members, argmax over classes" is
imagenet-testbed's set-membership accuracy over the 125-class sublist. Only images of the 113
overlapping classes are listed. Every image carries a 1-px red border that must not reach the model:
the manifest column ``border_crop`` (default 2 px per side, imagenet-testbed) tells the predict stage
how many pixels to cut from each side before the model's own transform.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import pandas as pd

from oodbench.datasets.common import (
    IMAGES_DIR,
    DatasetLayoutError,
    apply_label_space,
    check_images,
)
from oodbench.datasets.download import extract_archive
from oodbench.datasets.manifest import staged_dataset_dir, write_manifest

log = logging.getLogger(__name__)

TOP_DIR = "objectnet-1.0"
MAPPING_FILES = (
    "folder_to_objectnet_label.json",
    "objectnet_to_imagenet_1k.json",
    "imagenet_to_label_2012_v2",
    "pytorch_to_imagenet_2012_id.json",
)
DEFAULT_BORDER_CROP = 2

HOW_TO_GET = """\
ObjectNet is a manual download: accept the licence at https://objectnet.dev/download.html, download
objectnet-1.0.zip (about 28 GB; or unzip it) and set in the config
  datasets.objectnet.path:     the zip, or the folder holding objectnet-1.0/images and objectnet-1.0/mappings
  datasets.objectnet.password: the zip password, printed on that download page and in the ObjectNet README"""


def prepare(dest: Path, options: dict, archives=()) -> Path:
    source = _user_source(options)
    border = int(options.get("border_crop", DEFAULT_BORDER_CROP))
    if border < 0:
        raise ValueError(f"datasets.objectnet.border_crop must be >= 0, got {border}")
    with staged_dataset_dir(dest) as staging:
        images = staging / IMAGES_DIR
        if source.is_dir():
            images.symlink_to(source.resolve(), target_is_directory=True)
            mappings = _read_mappings_from_folder(_top(images))
        else:
            password = _password(options, source)
            mappings, top_in_zip = _read_mappings_from_zip(source, password)
            _, folders = class_table(mappings)
            wanted = ["mappings"] + [f"images/{f}" for f in folders]
            extract_archive(
                source, images, password=password, members_under=top_in_zip, only=wanted
            )
        classes, folders = class_table(mappings)
        frame = _scan_images(_top(images), images, folders)
        frame["path"] = [f"{IMAGES_DIR}/{p}" for p in frame["path"]]
        frame["border_crop"] = border
        check_images(
            staging, frame["path"].tolist(), options.get("verify_images", "tail")
        )
        document = {
            "dataset": options.get("name", "objectnet"),
            "source": (
                "objectnet-1.0/mappings (objectnet_to_imagenet_1k.json order; ImageNet names resolved via "
                f"imagenet_to_label_2012_v2 + pytorch_to_imagenet_2012_id.json); border_crop={border}px"
            ),
            "classes": apply_label_space(
                classes, options.get("label_space", "subset"), "objectnet"
            ),
        }
        write_manifest(frame, document, staging)
    return dest


def _user_source(options: dict) -> Path:
    value = options.get("path")
    if not value:
        raise DatasetLayoutError(f"datasets.objectnet.path is not set.\n{HOW_TO_GET}")
    path = Path(value).expanduser()
    if not path.exists():
        raise DatasetLayoutError(
            f"datasets.objectnet.path = {path} does not exist.\n{HOW_TO_GET}"
        )
    return path


def _password(options: dict, archive: Path) -> str | None:
    password = options.get("password")
    with zipfile.ZipFile(archive) as bundle:
        encrypted = any(info.flag_bits & 0x1 for info in bundle.infolist()[:50])
    if encrypted and not password:
        raise DatasetLayoutError(
            f"{archive} is password-protected and datasets.objectnet.password is not set.\n{HOW_TO_GET}"
        )
    return password


def _top(images: Path) -> Path:
    return images / TOP_DIR if (images / TOP_DIR).is_dir() else images


def _read_mappings_from_folder(top: Path) -> dict:
    folder = top / "mappings"
    missing = [name for name in MAPPING_FILES if not (folder / name).is_file()]
    if missing:
        raise DatasetLayoutError(f"{folder}: missing {missing}.\n{HOW_TO_GET}")
    return {name: (folder / name).read_text(encoding="utf-8") for name in MAPPING_FILES}


def _read_mappings_from_zip(
    archive: Path, password: str | None
) -> tuple[dict, str | None]:
    """The mapping files' text, read straight from the zip, and the zip's top folder (if any)."""
    with zipfile.ZipFile(archive) as bundle:
        names = {Path(n).name: n for n in bundle.namelist() if "/mappings/" in f"/{n}"}
        missing = [name for name in MAPPING_FILES if name not in names]
        if missing:
            raise DatasetLayoutError(
                f"{archive}: no mappings/{missing} inside.\n{HOW_TO_GET}"
            )
        pwd = password.encode() if password else None
        try:
            texts = {
                name: bundle.read(names[name], pwd=pwd).decode("utf-8")
                for name in MAPPING_FILES
            }
        except RuntimeError as error:
            raise DatasetLayoutError(
                f"{archive}: cannot decrypt ({error}); check datasets.objectnet.password"
            ) from error
    top = names[MAPPING_FILES[0]].split("/mappings/")[0] or None
    return texts, top


def class_table(mappings: dict) -> tuple[list[dict], list[str]]:
    """(classes with ImageNet members, image folder of each class), in objectnet_to_imagenet_1k.json order."""
    folder_to_name = json.loads(mappings["folder_to_objectnet_label.json"])
    name_to_folder = {name: folder for folder, name in folder_to_name.items()}
    overlap = json.loads(mappings["objectnet_to_imagenet_1k.json"])
    line_of_name = {
        line.strip(): i
        for i, line in enumerate(mappings["imagenet_to_label_2012_v2"].splitlines())
        if line.strip()
    }
    index_of_line = {
        int(line): int(index)
        for index, line in json.loads(
            mappings["pytorch_to_imagenet_2012_id.json"]
        ).items()
    }
    classes, folders = [], []
    for objectnet_name, imagenet_names in overlap.items():
        if objectnet_name not in name_to_folder:
            raise DatasetLayoutError(
                f"objectnet_to_imagenet_1k.json: {objectnet_name!r} has no folder in folder_to_objectnet_label.json"
            )
        members = []
        for imagenet_name in imagenet_names.split("; "):
            if (
                imagenet_name not in line_of_name
                or line_of_name[imagenet_name] not in index_of_line
            ):
                raise DatasetLayoutError(
                    f"ObjectNet mappings: ImageNet class {imagenet_name!r} cannot be resolved to an index"
                )
            members.append(index_of_line[line_of_name[imagenet_name]])
        classes.append({"name": objectnet_name, "imagenet": members})
        folders.append(name_to_folder[objectnet_name])
    log.info(
        "ObjectNet: %d overlapping classes -> %d ImageNet classes",
        len(classes),
        len({m for c in classes for m in c["imagenet"]}),
    )
    return classes, folders


def _scan_images(top: Path, images: Path, folders: list[str]) -> pd.DataFrame:
    parts = []
    for label, folder in enumerate(folders):
        directory = top / "images" / folder
        if not directory.is_dir():
            raise DatasetLayoutError(
                f"{directory}: class folder missing (expected {TOP_DIR}/images/<folder>/*.png)"
            )
        files = sorted(
            f for f in directory.iterdir() if f.is_file() and not f.name.startswith(".")
        )
        parts.append(
            pd.DataFrame(
                {
                    "image_id": [f"{folder}/{f.name}" for f in files],
                    "path": [f.relative_to(images).as_posix() for f in files],
                    "label": label,
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    log.info("ObjectNet: %d images of the overlapping classes", len(frame))
    return frame
