"""Fetch, verify and unpack dataset archives without ever leaving something that looks complete.

- :func:`download` streams a URL into ``<dest>.part`` and resumes it with an HTTP ``Range`` request
  when a previous attempt was cut off (a server that ignores ``Range`` makes it restart from zero).
  Only a file whose checksum matches is renamed to ``dest``; a mismatch deletes the partial file and
  raises :class:`ChecksumError` with both digests.
- :func:`extract_archive` unpacks tar / tar.gz / zip (including password-protected zip, as ObjectNet
  ships) into a temporary sibling folder and renames it into place.

Only the standard library is used (urllib, hashlib, tarfile, zipfile).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
PROGRESS_EVERY_S = 10.0


class DownloadError(RuntimeError):
    """The transfer failed (network, HTTP status, short body); rerunning resumes it."""


class ChecksumError(RuntimeError):
    """A file's digest differs from the configured one; the message names both digests."""


# ----------------------------------------------------------------------------- checksums


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks (progress logged for multi-GB archives)."""
    path = Path(path)
    digest = hashlib.new(algorithm)
    total = path.stat().st_size
    done, last_report = 0, time.monotonic()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
            done += len(block)
            if time.monotonic() - last_report > PROGRESS_EVERY_S:
                log.info(
                    "hashing %s: %.1f%% of %s",
                    path.name,
                    100 * done / max(total, 1),
                    _size(total),
                )
                last_report = time.monotonic()
    return digest.hexdigest()


def expected_digest(
    sha256: str | None = None, md5: str | None = None
) -> tuple[str, str] | None:
    """The (algorithm, hex) pair to verify with; sha256 wins when both are configured."""
    if sha256:
        return "sha256", sha256.strip().lower()
    if md5:
        return "md5", md5.strip().lower()
    return None


def verify_file(
    path: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    what: str = "",
) -> str | None:
    """Raise :class:`ChecksumError` (both digests in the message) unless ``path`` matches.

    Returns the verified hex digest, or None when no checksum is configured (the sha256 is then
    logged so it can be pinned in the config).
    """
    path = Path(path)
    expected = expected_digest(sha256, md5)
    if expected is None:
        actual = file_digest(path, "sha256")
        log.warning(
            "%s: no checksum configured, not verified; its sha256 is %s (add it to the config to pin it)",
            path,
            actual,
        )
        return None
    algorithm, want = expected
    actual = file_digest(path, algorithm)
    if actual != want:
        source = f" (from {what})" if what else ""
        raise ChecksumError(
            f"{path}{source}: {algorithm} mismatch: expected {want}, got {actual}"
        )
    log.info("%s: %s verified (%s)", path.name, algorithm, actual)
    return actual


# ----------------------------------------------------------------------------- download


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    retries: int = 3,
    timeout_s: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``<dest>.part`` from an earlier attempt.

    Connection failures are retried ``retries`` times (each retry resumes); when they run out,
    :class:`DownloadError` is raised and ``<dest>.part`` is kept so that the next call resumes.
    A checksum mismatch deletes ``<dest>.part`` and raises :class:`ChecksumError`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _fetch_into(url, part, timeout_s)
            break
        except DownloadError as error:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"{url}: download to {dest} failed after {attempt} attempt(s): {error}; "
                    f"{part} was kept, rerun to resume"
                ) from error
            log.warning(
                "%s: %s; retrying (%d/%d) from byte %d",
                url,
                error,
                attempt,
                retries,
                _size_of(part),
            )
            time.sleep(min(2.0**attempt, 30.0))
    try:
        verify_file(part, sha256=sha256, md5=md5, what=url)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    log.info("%s: downloaded to %s (%s)", url, dest, _size(dest.stat().st_size))
    return dest


def _fetch_into(url: str, part: Path, timeout_s: float) -> None:
    """Append the rest of ``url`` to ``part`` (HTTP Range from its current size)."""
    offset = _size_of(part)
    request = urllib.request.Request(url, headers={"User-Agent": "oodbench"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # Nothing left to fetch: the partial file is already whole (the checksum decides).
            log.info(
                "%s: server reports %s already complete at %d bytes",
                url,
                part.name,
                offset,
            )
            return
        raise DownloadError(f"HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise DownloadError(str(error)) from error
    with response:
        status = getattr(response, "status", 200)
        if offset and status != 206:
            log.warning(
                "%s: server ignored the Range request (HTTP %s); restarting from zero",
                url,
                status,
            )
            offset = 0
        expected_total = _total_size(response, offset)
        mode = "ab" if offset else "wb"
        log.info(
            "%s: fetching %s from byte %d (total %s)",
            url,
            part.name,
            offset,
            _size(expected_total) if expected_total else "unknown",
        )
        done, last_report = offset, time.monotonic()
        try:
            with open(part, mode) as handle:
                for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                    handle.write(block)
                    done += len(block)
                    if time.monotonic() - last_report > PROGRESS_EVERY_S:
                        _log_progress(url, done, expected_total)
                        last_report = time.monotonic()
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError(f"connection lost at byte {done}: {error}") from error
    if expected_total is not None and done != expected_total:
        raise DownloadError(f"short body: got {done} of {expected_total} bytes")


def _total_size(response, offset: int) -> int | None:
    length = response.headers.get("Content-Length")
    return offset + int(length) if length is not None else None


def _log_progress(url: str, done: int, total: int | None) -> None:
    if total:
        log.info(
            "%s: %.1f%% (%s of %s)", url, 100 * done / total, _size(done), _size(total)
        )
    else:
        log.info("%s: %s", url, _size(done))


def _size_of(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _size(num_bytes: int) -> str:
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


# ----------------------------------------------------------------------------- extraction


def extract_archive(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    password: str | None = None,
    members_under: str | None = None,
    only: list[str] | None = None,
) -> Path:
    """Unpack ``archive`` into the folder ``dest`` via a temporary sibling and one rename.

    ``members_under``: only members below this archive folder are unpacked (e.g. one dataset out of
    a combined tarball); ``dest`` then holds that folder's contents. ``only``: archive path prefixes
    to unpack (others are skipped; paths keep their place). ``password``: for encrypted zip.
    An existing ``dest`` is replaced.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: archive not found")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    try:
        log.info("extracting %s into %s", archive, dest)
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, staging, password, members_under, only)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, staging, members_under, only)
        else:
            raise ValueError(
                f"{archive}: not a tar, tar.gz or zip archive (is the download complete?)"
            )
        root = staging / members_under if members_under else staging
        if not root.is_dir():
            raise ValueError(
                f"{archive}: holds no folder '{members_under}' (unexpected layout)"
            )
        if dest.exists():
            shutil.rmtree(dest)
        # mkdtemp makes the folder private (0700); give it the permissions a plain mkdir would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(root, 0o777 & ~umask)
        os.replace(root, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _extract_tar(
    archive: Path, staging: Path, members_under: str | None, only: list[str] | None
) -> None:
    with tarfile.open(archive) as tar:
        members = _selected(tar.getmembers(), lambda m: m.name, members_under, only)
        for count, member in enumerate(members, 1):
            # The 'data' filter rejects absolute paths, '..' and device files from untrusted archives.
            tar.extract(member, staging, filter="data")
            if count % 20000 == 0:
                log.info(
                    "%s: %d of %d members extracted", archive.name, count, len(members)
                )


def _extract_zip(
    archive: Path,
    staging: Path,
    password: str | None,
    members_under: str | None,
    only: list[str] | None,
) -> None:
    with zipfile.ZipFile(archive) as bundle:
        if password is not None:
            bundle.setpassword(password.encode())
        members = _selected(
            bundle.infolist(), lambda m: m.filename, members_under, only
        )
        root = staging.resolve()
        for count, member in enumerate(members, 1):
            target = (staging / member.filename).resolve()
            if root not in target.parents and target != root:
                raise ValueError(
                    f"{archive}: member {member.filename!r} would extract outside the folder"
                )
            try:
                bundle.extract(member, staging)
            except RuntimeError as error:
                # zipfile raises RuntimeError for encrypted members without / with a wrong password.
                raise ValueError(
                    f"{archive}: cannot decrypt {member.filename!r}: {error}"
                ) from error
            if count % 20000 == 0:
                log.info(
                    "%s: %d of %d members extracted", archive.name, count, len(members)
                )


def _selected(
    members: list, name_of, members_under: str | None, only: list[str] | None = None
) -> list:
    prefixes = [p.strip("/") + "/" for p in (only or [])]
    if members_under:
        under = members_under.strip("/") + "/"
        prefixes = [under + p for p in prefixes] if prefixes else [under]
    if not prefixes:
        return members
    # str.startswith accepts a tuple: one pass over a 50k-member archive listing
    return [m for m in members if _clean(name_of(m)).startswith(tuple(prefixes))]


def _clean(name: str) -> str:
    return name[2:] if name.startswith("./") else name
