"""Evidence bundles: a folder of probe outputs and evidence files with a manifest.

Layout of a bundle folder:

    manifest.json          schema_version, created_at, tool, observations, files
    observations/NN-....   one output file per observation
    anything else          extra evidence files (access logs, policies, pod JSON),
                           each listed by its relative path in manifest "files"

Each manifest observation records probe_id, argv, status, started_at,
duration_s, exit_status, reason, target and the name of its output file.
Everything written passes through `doctor.redact.redact_text`, so a bundle
can be shared: no private key, bearer token or JWT signature reaches disk.
Live collection writes bundles and offline analysis reads them, so both
reach the parsers through `read_bundle`.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import tarfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

from doctor import __version__
from doctor.model import Document, Observation, ProbeStatus
from doctor.redact import redact_text

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Evidence files larger than this are not read; NUL bytes in the first
# BINARY_SNIFF_BYTES mark a binary file, which is not evidence either.
MAX_FILE_BYTES = 256 * 1024 * 1024
BINARY_SNIFF_BYTES = 8192
MANIFEST_NAME = "manifest.json"
OBSERVATIONS_DIR = "observations"
TOOL_NAME = "mesh-doctor"
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


class BundleError(ValueError):
    """Raised for a bundle that cannot be written or read, naming the file and the fix."""


# --- writing -------------------------------------------------------------------


def write_bundle(
    directory: str | os.PathLike[str],
    observations: Iterable[Observation],
    extra_files: Mapping[str, str] | None = None,
    *,
    created_at: datetime | None = None,
    description: str = "",
) -> Path:
    """Write `observations` and `extra_files` (relative path -> text) as a bundle in `directory`.

    `description` is stored in the manifest for people browsing the bundle.

    `directory` must not exist yet or be empty. Raises BundleError for a
    non-empty directory or an extra file name that is absolute, contains
    "..", or collides with the manifest or an observation output.
    """
    root = Path(directory)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise BundleError(f"{root} exists and is not an empty folder; write the bundle to a new folder")
    extra_files = dict(extra_files or {})
    for name in extra_files:
        _check_relative_name(name, f"extra file {name!r}")
        if name == MANIFEST_NAME or PurePosixPath(name).parts[0] == OBSERVATIONS_DIR:
            raise BundleError(f"extra file {name!r} collides with the bundle's own {MANIFEST_NAME} "
                              f"or {OBSERVATIONS_DIR}/ folder; rename it")
    root.mkdir(parents=True, exist_ok=True)

    entries = []
    for index, observation in enumerate(observations, start=1):
        output_name = _output_name(index, observation)
        _write_text(root / output_name, observation.output)
        entries.append(_observation_entry(observation, output_name))

    for name, text in sorted(extra_files.items()):
        _write_text(root / name, text)

    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created_at": _iso(created_at or datetime.now(timezone.utc)),
        "tool": {"name": TOOL_NAME, "version": __version__},
        "description": redact_text(description),
        "observations": entries,
        "files": sorted(extra_files),
    }
    # Every manifest value was masked above. Masking the JSON text again would
    # cut a header value to the end of its line, across the escaped newlines of
    # a multi-line reason, and leave invalid JSON.
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info("wrote bundle %s: %d observations, %d files", root, len(entries), len(extra_files))
    return root


def _output_name(index: int, observation: Observation) -> str:
    slug = _SLUG.sub("-", observation.probe_id).strip("-") or "probe"
    if observation.target:
        slug += "-" + _SLUG.sub("-", observation.target).strip("-")
    extension = ".json" if _looks_like_json(observation.output) else ".txt"
    return f"{OBSERVATIONS_DIR}/{index:02d}-{slug[:100]}{extension}"


def _looks_like_json(text: str) -> bool:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _observation_entry(observation: Observation, output_name: str) -> dict[str, Any]:
    return {
        "probe_id": observation.probe_id,
        "argv": [redact_text(arg) for arg in observation.argv],
        "status": observation.status.value,
        "started_at": _iso(observation.started_at),
        "duration_s": observation.duration_s,
        "exit_status": observation.exit_status,
        "reason": redact_text(observation.reason),
        "target": observation.target,
        "output": output_name,
    }


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact_text(text), encoding="utf-8")


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat()


def _check_relative_name(name: str, subject: str) -> None:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or name != path.as_posix():
        raise BundleError(f"{subject} must be a relative path inside the bundle without '..' "
                          f"(such as 'logs/app.log')")


# --- reading -------------------------------------------------------------------


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check the manifest of the bundle in `directory`; raises BundleError."""
    root = Path(directory)
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path} not found; {root} is not a Mesh Doctor bundle "
                          "(pass the bundle folder, the one that contains manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise BundleError(f"{manifest_path} is not valid JSON: {error}") from error
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path}: expected a JSON object at the top level")

    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"{manifest_path}: schema_version {version!r} is not supported "
                          f"(this Mesh Doctor {__version__} reads version {SCHEMA_VERSION})")
    for key in ("observations", "files"):
        if not isinstance(manifest.get(key, []), list):
            raise BundleError(f"{manifest_path}: {key!r} must be a list")
    return manifest


def read_bundle(directory: str | os.PathLike[str]) -> tuple[list[Document], list[Observation]]:
    """Read the bundle in `directory`: a Document per ok observation and per evidence file, and every observation.

    Observations come back whatever their status, so the engine can report a
    probe that failed as not checked. An output or evidence file that the
    manifest lists but the folder lacks comes back as a failed observation
    saying so. Files in the folder that the manifest does not list are read
    as evidence too, because an engineer may have added them by hand.
    Raises BundleError for a missing or invalid manifest.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    manifest_path = root / MANIFEST_NAME
    documents: list[Document] = []
    observations: list[Observation] = []
    known_names = {MANIFEST_NAME}

    for index, entry in enumerate(manifest.get("observations", [])):
        observation = _observation_from_entry(entry, f"{manifest_path}: observations[{index}]", root)
        output_name = entry["output"]
        known_names.add(output_name)
        observations.append(observation)
        if observation.status is ProbeStatus.OK:
            documents.append(Document(source=str(root / output_name), text=observation.output))

    for index, name in enumerate(manifest.get("files", [])):
        if not isinstance(name, str):
            raise BundleError(f"{manifest_path}: files[{index}] must be a path string, not {name!r}")
        _check_manifest_name(name, f"{manifest_path}: files[{index}]")
        known_names.add(name)
        path = root / name
        if not path.is_file():
            observations.append(_unread_file(name, root, "is listed in the manifest but missing "
                                                         "from the bundle"))
            continue
        text, unreadable = _read_text(path)
        if unreadable is not None:
            observations.append(_unread_file(name, root, unreadable))
            continue
        documents.append(Document(source=str(path), text=text))

    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if not path.is_file() or name in known_names or any(p.startswith(".") for p in path.relative_to(root).parts):
            continue
        logger.info("bundle %s: reading %s, which the manifest does not list", root, name)
        text, unreadable = _read_text(path)
        if unreadable is not None:
            observations.append(_unread_file(name, root, unreadable))
            continue
        documents.append(Document(source=str(path), text=text))

    return documents, observations


def _check_manifest_name(name: str, where: str) -> None:
    try:
        _check_relative_name(name, where)
    except BundleError as error:
        raise BundleError(f"{error}; got {name!r}") from None


def _observation_from_entry(entry: Any, where: str, root: Path) -> Observation:
    if not isinstance(entry, dict):
        raise BundleError(f"{where} must be an object")
    for key in ("probe_id", "argv", "status", "started_at", "output"):
        if key not in entry:
            raise BundleError(f"{where}: missing key {key!r}")

    try:
        status = ProbeStatus(entry["status"])
    except ValueError:
        allowed = ", ".join(s.value for s in ProbeStatus)
        raise BundleError(f"{where}.status: {entry['status']!r} is not one of {allowed}") from None
    try:
        started_at = datetime.fromisoformat(entry["started_at"])
    except (TypeError, ValueError):
        raise BundleError(f"{where}.started_at: {entry['started_at']!r} is not an ISO 8601 time") from None
    argv = entry["argv"]
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise BundleError(f"{where}.argv must be a list of strings")
    output_name = entry["output"]
    if not isinstance(output_name, str):
        raise BundleError(f"{where}.output must be a file name")
    _check_manifest_name(output_name, f"{where}.output")
    exit_status = entry.get("exit_status")
    if exit_status is not None and not isinstance(exit_status, int):
        raise BundleError(f"{where}.exit_status: {exit_status!r} is not an integer or null")

    reason = str(entry.get("reason") or "")
    output_path = root / output_name
    if output_path.is_file():
        output, unreadable = _read_text(output_path)
        if unreadable is not None and status is ProbeStatus.OK:
            status = ProbeStatus.FAILED
            reason = f"output file {output_name} {unreadable}"
            logger.warning("bundle %s: %s", root, reason)
    else:
        output = ""
        if status is ProbeStatus.OK:
            status = ProbeStatus.FAILED
            reason = f"output file {output_name} is missing from the bundle"
            logger.warning("bundle %s: %s", root, reason)

    return Observation(
        probe_id=str(entry["probe_id"]),
        argv=tuple(argv),
        started_at=started_at,
        duration_s=float(entry.get("duration_s") or 0.0),
        exit_status=exit_status,
        status=status,
        output=output,
        reason=reason,
        target=str(entry.get("target") or ""),
    )


def _unread_file(name: str, root: Path, problem: str) -> Observation:
    """Return a failed observation for an evidence file that could not be read."""
    reason = f"evidence file {name} {problem}"
    logger.warning("bundle %s: %s", root, reason)
    return Observation(
        probe_id="bundle.file", argv=(), started_at=datetime.now(timezone.utc), duration_s=0.0,
        exit_status=None, status=ProbeStatus.FAILED, output="", reason=reason, target=name)


def _read_text(path: Path) -> tuple[str, str | None]:
    """Read a file of the bundle as text; return it, or "" and why it was not read."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return "", (f"is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB ({size:,} bytes); "
                        "cut the time window you need with `tail` or `grep` first")
        data = path.read_bytes()
    except OSError as error:
        return "", f"cannot be read: {error.strerror}"
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        return "", "is a binary file (NUL bytes in its first 8 KiB), not text"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        logger.warning("%s is not valid UTF-8; undecodable bytes were replaced with U+FFFD", path)
        return data.decode("utf-8", "replace"), None


# --- archives ------------------------------------------------------------------


def pack_bundle(directory: str | os.PathLike[str], archive: str | os.PathLike[str] | None = None) -> Path:
    """Pack the bundle folder into a .tar.gz whose single top-level folder is the bundle's name.

    Members are sorted and carry the manifest's created_at as their time and
    no owner, so packing the same bundle twice gives the same bytes.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    archive_path = Path(archive) if archive is not None else root.with_name(root.name + ".tar.gz")
    try:
        mtime = int(datetime.fromisoformat(manifest["created_at"]).timestamp())
    except (KeyError, TypeError, ValueError):
        mtime = 0

    # Listed before the archive is opened, so an archive inside the folder is not packed into itself.
    paths = [root, *sorted(root.rglob("*"))]
    with (open(archive_path, "wb") as raw,
          gzip.GzipFile(fileobj=raw, mode="wb", mtime=mtime, filename="") as gz,
          tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar):
        for path in paths:
            name = root.name if path == root else f"{root.name}/{path.relative_to(root).as_posix()}"
            info = tar.gettarinfo(str(path), arcname=name)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isfile():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            elif info.isdir():
                tar.addfile(info)
    return archive_path


def unpack_bundle(archive: str | os.PathLike[str], destination: str | os.PathLike[str]) -> Path:
    """Extract a bundle archive into `destination` and return the folder that contains manifest.json.

    Extraction uses tarfile's "data" filter, which rejects absolute paths,
    ".." and links that point outside `destination`. Raises BundleError for
    an unreadable archive or one without a manifest.
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            tar.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise BundleError(f"{archive}: cannot extract the bundle archive: {error}") from error

    candidates = sorted(p.parent for p in destination.rglob(MANIFEST_NAME))
    if not candidates:
        raise BundleError(f"{archive} contains no {MANIFEST_NAME}, so it is not a Mesh Doctor bundle")
    return min(candidates, key=lambda p: len(p.parts))


def remove_bundle(directory: str | os.PathLike[str]) -> None:
    """Delete a bundle folder; raises BundleError unless it contains a bundle manifest."""
    root = Path(directory)
    read_manifest(root)
    shutil.rmtree(root)
