"""Tiny archives in the real layouts of the seven robustness datasets, and a local HTTP server.

Everything is built by code at test time: a handful of small images per class, the real folder and
file naming, and the real metadata formats (devkit meta.mat, ObjectNet mappings, pm-set JSON, YTBB
review annotations). The server supports HTTP Range and can cut a response off mid-body.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import struct
import tarfile
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = [line.strip() for line in (Path(__file__).parents[1] / "oodbench/datasets/data/imagenet_wnids.txt").read_text().split()]


def image_bytes(seed: int, fmt: str = "JPEG", size: int = 40) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_bytes(files: dict[str, bytes], gz: bool = False) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz" if gz else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# ----------------------------------------------------------------------------- HTTP server


class FixtureServer:
    """Serves ``files`` (name -> bytes) on 127.0.0.1; ``cut[name] = n`` closes after n body bytes."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.cut: dict[str, int] = {}
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                header = self.headers.get("Range")
                server.ranges.append(header)
                start = int(header.split("=")[1].split("-")[0]) if header else 0
                if start >= len(data) and header:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                body = data[start:]
                self.send_response(206 if header else 200)
                if header:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                limit = server.cut.pop(name, None)
                if limit is not None:
                    self.wfile.write(body[:limit])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------------------- encrypted zip


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _crc_table()


class _ZipCrypto:
    """Traditional PKWARE encryption (what ObjectNet's zip uses and Python's zipfile decrypts)."""

    def __init__(self, password: bytes):
        self.keys = [0x12345678, 0x23456789, 0x34567890]
        for byte in password:
            self._update(byte)

    def _update(self, byte: int) -> None:
        k0, k1, k2 = self.keys
        k0 = (k0 >> 8) ^ _CRC[(k0 ^ byte) & 0xFF]
        k1 = (k1 + (k0 & 0xFF)) & 0xFFFFFFFF
        k1 = (k1 * 134775813 + 1) & 0xFFFFFFFF
        k2 = (k2 >> 8) ^ _CRC[(k2 ^ (k1 >> 24)) & 0xFF]
        self.keys = [k0, k1, k2]

    def encrypt(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            temp = (self.keys[2] | 2) & 0xFFFF
            out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
            self._update(byte)
        return bytes(out)


def encrypted_zip_bytes(files: dict[str, bytes], password: str) -> bytes:
    """A stored (uncompressed) zip whose members are ZipCrypto-encrypted with ``password``."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data in files.items():
        crc = zlib.crc32(data) & 0xFFFFFFFF
        cipher = _ZipCrypto(password.encode())
        header = os.urandom(11) + bytes([crc >> 24])
        payload = cipher.encrypt(header) + cipher.encrypt(data)
        offset = out.tell()
        encoded = name.encode()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 1, 0, 0, 0x21, crc, len(payload), len(data), len(encoded), 0))
        out.write(encoded + payload)
        central.write(
            struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 1, 0, 0, 0x21, crc, len(payload), len(data),
                        len(encoded), 0, 0, 0, 0, 0o644 << 16, offset)
        )
        central.write(encoded)
    start, directory = out.tell(), central.getvalue()
    out.write(directory)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(files), len(files), len(directory), start, 0))
    return out.getvalue()


# ----------------------------------------------------------------------------- ImageNet


def devkit_tar_gz(ground_truth_wnids: list[str]) -> bytes:
    """A devkit whose meta.mat IDs are *not* in sorted-wnid order (reversed), like the real one."""
    from scipy.io import savemat

    ids_in_meta_order = list(reversed(WNIDS))  # ILSVRC2012_ID k+1 -> ids_in_meta_order[k]
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")]
    synsets = np.zeros((len(WNIDS) + 1,), dtype=dtype)
    for k, wnid in enumerate(ids_in_meta_order):
        synsets[k] = (k + 1, wnid, f"words of {wnid}", 0)
    synsets[-1] = (1001, "n00001740", "entity", 3)  # a non-leaf synset, as meta.mat has
    buffer = io.BytesIO()
    savemat(buffer, {"synsets": synsets})
    id_of = {wnid: k + 1 for k, wnid in enumerate(ids_in_meta_order)}
    truth = "".join(f"{id_of[w]}\n" for w in ground_truth_wnids)
    return tar_bytes(
        {
            "ILSVRC2012_devkit_t12/data/meta.mat": buffer.getvalue(),
            "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt": truth.encode(),
        },
        gz=True,
    )


IMAGENET_TRUTH = ["n01751748", "n01440764", "n15075141", "n01751748", "n02085620"]  # 65, 0, 999, 65, 151


def imagenet_val_tar() -> bytes:
    return tar_bytes({f"ILSVRC2012_val_{i:08d}.JPEG": image_bytes(i) for i in range(1, len(IMAGENET_TRUTH) + 1)})


def loc_val_solution_csv() -> str:
    lines = ["ImageId,PredictionString"]
    for i, wnid in enumerate(IMAGENET_TRUTH, start=1):
        lines.append(f"ILSVRC2012_val_{i:08d},{wnid} 1 2 30 40 {wnid} 5 6 7 8")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- V2, A, C


V2_CLASSES = [0, 1, 2, 10, 100, 999]  # string sort: 0, 1, 10, 100, 2, 999


def imagenet_v2_tar_gz(per_class: int = 2) -> bytes:
    top = "imagenetv2-matched-frequency-format-val"
    files = {
        f"{top}/{k}/{hashlib.md5(f'{k}-{j}'.encode()).hexdigest()}.jpeg": image_bytes(100 * k + j)
        for k in V2_CLASSES
        for j in range(per_class)
    }
    return tar_bytes(files, gz=True)


A_WNIDS = ["n01498041", "n01531178", "n01534433", "n01558993"]  # sorted; indices 6, 11, 13, 15


def imagenet_a_tar() -> bytes:
    files = {f"imagenet-a/{w}/0.{w}_{j}.jpg": image_bytes(j + 7 * i) for i, w in enumerate(A_WNIDS) for j in range(2)}
    files["imagenet-a/README.txt"] = b"ImageNet-A"
    return tar_bytes(files)


C_WNIDS = ["n01440764", "n01443537"]


def imagenet_c_part_tar(corruptions: list[str], severities=(1, 2)) -> bytes:
    files = {
        f"{c}/{s}/{w}/ILSVRC2012_val_{i:08d}.JPEG": image_bytes(i + 10 * s)
        for c in corruptions
        for s in severities
        for i, w in enumerate(C_WNIDS, start=1)
    }
    return tar_bytes(files)


# ----------------------------------------------------------------------------- ObjectNet


OBJECTNET_PASSWORD = "fixture-password"
# pytorch (sorted-wnid) index -> line in imagenet_to_label_2012_v2 (a permutation, as in the release)
OBJECTNET_LINES = {"409": 2, "530": 0, "892": 1, "999": 3}
OBJECTNET_NAMES_BY_LINE = ["digital clock", "wall clock", "analog clock", "toilet tissue"]


def objectnet_zip() -> bytes:
    top = "objectnet-1.0"
    mappings = {
        "folder_to_objectnet_label.json": json.dumps({"alarm_clock": "Alarm clock", "toilet_paper": "Toilet paper", "air_freshener": "Air freshener"}),
        "objectnet_to_imagenet_1k.json": json.dumps({"Toilet paper": "toilet tissue", "Alarm clock": "analog clock; digital clock"}),
        "pytorch_to_imagenet_2012_id.json": json.dumps(OBJECTNET_LINES),
        "imagenet_to_label_2012_v2": "\n".join(OBJECTNET_NAMES_BY_LINE) + "\n",
    }
    files = {f"{top}/mappings/{name}": text.encode() for name, text in mappings.items()}
    for folder in ("alarm_clock", "toilet_paper", "air_freshener"):
        for j in range(2):
            files[f"{top}/images/{folder}/{folder}_{j}.png"] = image_bytes(j + len(folder), fmt="PNG")
    files[f"{top}/README"] = b"Remove the 1-pixel red border"
    return encrypted_zip_bytes(files, OBJECTNET_PASSWORD)


# ----------------------------------------------------------------------------- video sets


VID_ROOT = "imagenet_vid_ytbb_robust/imagenet-vid-robust"
YTBB_ROOT = "imagenet_vid_ytbb_robust/ytbb-robust"


def vid_metadata() -> dict[str, object]:
    a1 = "val/ILSVRC2015_val_00000000/000010.JPEG"
    a2 = "val/ILSVRC2015_val_00000001/000005.JPEG"
    pmsets = {
        a2: ["val/ILSVRC2015_val_00000001/000004.JPEG"],
        a1: ["val/ILSVRC2015_val_00000000/000011.JPEG", "val/ILSVRC2015_val_00000000/000000.JPEG"],
    }
    labels = {
        a1: [0], "val/ILSVRC2015_val_00000000/000011.JPEG": [0, 1], "val/ILSVRC2015_val_00000000/000000.JPEG": [0],
        a2: [1], "val/ILSVRC2015_val_00000001/000004.JPEG": [1],
    }
    return {
        "metadata/pmsets.json": pmsets,
        "metadata/labels.json": labels,
        "misc/imagenet_vid_class_index.json": {"0": ["n02691156", "airplane"], "1": ["n02419796", "antelope"]},
        "misc/rev_wnid_map.json": {"n02691156": ["n02690373"], "n02419796": ["n02422106", "n02422699", "n02423022"]},
    }


YTBB_CLASS_INDEX = {
    "0": "person", "1": "bird", "2": "bicycle", "3": "boat", "4": "bus", "5": "bear", "6": "cow", "7": "cat",
    "8": "giraffe", "9": "potted plant", "10": "horse", "11": "motorcycle", "12": "knife", "13": "airplane",
    "14": "skateboard", "15": "train", "16": "truck", "17": "zebra", "18": "toilet", "19": "dog",
    "20": "elephant", "21": "umbrella", "22": "none", "23": "car",
}
# YTBB index -> ImageNet indices (a few members per mapped class; cow/giraffe/skateboard/toilet/none empty)
YTBB_REV_MAP = {str(k): [10 * k + 1, 10 * k + 2] for k in range(24) if k not in (6, 8, 14, 18, 22)}


def ytbb_metadata() -> dict[str, str]:
    """Anchors: A valid (good); B good but flagged bad-anchor in a pair review; C marked bad;
    D good, original label cow (never predictable); E good, CSV label 22 (= car after the swap)."""
    anchor_names = ["good", "bad", "unsure", "dog", "cat", "car"]
    A, B, C, D, E = (f"vid{c}_1000/frame-10.jpg" for c in "ABCDE")
    anchors = {
        "labels": anchor_names,
        "annotations": [
            {"key": f"ytbb_videos/{A}", "labels": [1], "notes": ""},  # first annotation of A: bad ...
            {"key": f"ytbb_videos/{A}", "labels": [0, 3], "notes": ""},  # ... the latest wins: good + dog
            {"key": B, "labels": [0], "notes": ""},
            {"key": C, "labels": [0, 2], "notes": ""},
            {"key": D, "labels": [0], "notes": ""},
            {"key": E, "labels": [0], "notes": ""},
        ],
    }
    pair_names = ["similar", "dissimilar", "blur-increase", "bad-anchor", "correct"]

    def pair(anchor, offset, labels):
        video = anchor.split("/")[0]
        return {"key": f"{anchor},{video}/frame-{10 + offset}.jpg", "labels": labels, "notes": ""}

    pairs = {
        "labels": pair_names,
        "annotations": [
            pair(A, -1, [0]),  # valid
            pair(A, 1, [0, 2]),  # similar but blur-increase: invalid
            pair(A, 2, [1]),  # dissimilar: invalid
            pair(A, -10, [0, 4]),  # valid (correct is allowed)
            pair(A, 11, [0]),  # outside +-10: never used
            pair(B, 1, [0]),
            pair(B, 2, [3]),  # bad-anchor: B is dropped entirely
            pair(E, 3, [0]),
        ],
    }
    rows = [("vidA", 1000, 19), ("vidB", 1000, 7), ("vidC", 1000, 7), ("vidD", 1000, 6), ("vidE", 1000, 22)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["ytid", "time_ms", "label"])
    writer.writerows(rows)
    return {
        "anchor_labels.json": json.dumps(anchors),
        "pmk_labels.json": json.dumps(pairs),
        "ytbb_class_index.json": json.dumps(YTBB_CLASS_INDEX),
        "rev_class_idx_map.json": json.dumps(YTBB_REV_MAP),
        "ytbb_robustness_test_anchors_full.csv": buffer.getvalue(),
    }


def vid_ytbb_tar_gz() -> bytes:
    files = {}
    meta = vid_metadata()
    for name, value in meta.items():
        files[f"{VID_ROOT}/{name}"] = json.dumps(value).encode()
    frames = set(meta["metadata/labels.json"])
    for i, key in enumerate(sorted(frames)):
        files[f"{VID_ROOT}/{key}"] = image_bytes(300 + i)
    for i, video in enumerate("ABCDE"):
        for index in range(-1, 22):
            if index >= 0:
                files[f"{YTBB_ROOT}/ytbb_videos/vid{video}_1000/frame-{index}.jpg"] = image_bytes(400 + 30 * i + index)
    return tar_bytes(files, gz=True)

