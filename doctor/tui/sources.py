"""Read an input for the evidence browser, as display-safe lines with secrets masked.

This runs in a worker thread, never on the UI's event loop. An input is a file
path, or `ARCHIVE:MEMBER` for a file inside a tar archive, as the readers name
them.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path
from typing import BinaryIO

from doctor.readers import ARCHIVE_SUFFIXES
from doctor.redact import redact_text

MAX_READ_BYTES = 32 * 1024 * 1024
"""Inputs longer than this are shown up to this many bytes, so one huge log cannot exhaust memory."""


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def read_source_lines(source: str) -> tuple[list[str], bool]:
    """Read `source` as lines with secrets masked, tabs expanded and control characters replaced.

    Returns the lines and whether the input was cut at `MAX_READ_BYTES`. Raises
    `OSError` (`FileNotFoundError` for a missing archive member) when the input
    cannot be read. Masking keeps every line in place, so cited line numbers
    still point at the same line.
    """
    data = _read_bytes(source)
    truncated = len(data) > MAX_READ_BYTES
    if truncated:
        data = data[:MAX_READ_BYTES]

    text = redact_text(data.decode("utf-8", errors="replace"))
    lines = [
        _CONTROL_CHARACTERS.sub("\N{REPLACEMENT CHARACTER}", line.expandtabs(4))
        for line in text.splitlines()
    ]
    return lines, truncated


def _read_bytes(source: str) -> bytes:
    path = Path(source)
    if path.is_file():
        with path.open("rb") as stream:
            return _read_capped(stream)

    archive_path, member = _split_archive_source(source)
    if archive_path is None:
        # Raises the OSError that names the missing file.
        with path.open("rb") as stream:
            return _read_capped(stream)

    try:
        with tarfile.open(archive_path, mode="r:*") as archive:
            handle = archive.extractfile(member)
            if handle is None:
                raise FileNotFoundError(f"{member} is not a file in {archive_path}")
            with handle:
                return _read_capped(handle)
    except KeyError:
        raise FileNotFoundError(f"no member {member} in {archive_path}") from None
    except tarfile.TarError as error:
        raise OSError(f"{archive_path} is not a readable tar archive: {error}") from error


def _read_capped(stream: BinaryIO) -> bytes:
    return stream.read(MAX_READ_BYTES + 1)


def _split_archive_source(source: str) -> tuple[Path | None, str]:
    """Split `ARCHIVE:MEMBER` at the archive's suffix, or return (None, "") when `source` names no archive."""
    for suffix in ARCHIVE_SUFFIXES:
        marker = f"{suffix}:"
        position = source.find(marker)
        if position != -1:
            archive = Path(source[: position + len(suffix)])
            if archive.is_file():
                return archive, source[position + len(marker):]
    return None, ""
