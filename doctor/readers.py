"""Turn paths (files, folders, `.tar.gz` archives, bundles) into documents and facts.

Each document is recognised by its content: the structured parsers are tried
in order and the first whose `sniff` accepts it parses the whole document.
Documents no structured parser takes go to the text scanners (JWTs and the
error-signature catalogue). Unreadable inputs are listed as skipped with the
reason; nothing is dropped silently.
"""

from __future__ import annotations

import logging
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Iterable, Sequence

from doctor import bundle
from doctor.diagnosis import InputSummary
from doctor.facts import FactSet
from doctor.model import Document, Observation, ParseProblem, ParseResult, Skipped
from doctor.parsers import (
    accesslog,
    envoy_admin,
    istio,
    istioctl,
    jwt,
    kube,
    resources,
    signatures,
    tls,
)

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
MAX_FILE_BYTES = bundle.MAX_FILE_BYTES
BINARY_SNIFF_BYTES = bundle.BINARY_SNIFF_BYTES

# Order matters: a document goes to the first parser that recognises it, so
# the parsers of specific structured formats come before the looser ones.
STRUCTURED_PARSERS: tuple[ModuleType, ...] = (
    kube,
    istio,
    envoy_admin,
    istioctl,
    resources,
    tls,
    accesslog,
    jwt,
)

# Both read lists of Kubernetes objects, so a mixed `kubectl get pods,peerauthentications
# -o yaml` goes to each of them and each keeps the objects of its own kinds.
OBJECT_PARSERS: tuple[ModuleType, ...] = (kube, istio)


@dataclass
class ReadResult:
    facts: FactSet = field(default_factory=FactSet)
    inputs: list[InputSummary] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)


def read_paths(paths: Sequence[Path], catalogue: Sequence[signatures.Signature]) -> ReadResult:
    """Read every path into one fact set, with a summary of what each input was."""
    result = ReadResult()
    for document in _documents(paths, result):
        _read_document(document, catalogue, result)
    return result


def read_documents(documents: Iterable[Document],
                   catalogue: Sequence[signatures.Signature]) -> ReadResult:
    result = ReadResult()
    for document in documents:
        _read_document(document, catalogue, result)
    return result


def _read_document(document: Document, catalogue: Sequence[signatures.Signature],
                   result: ReadResult) -> None:
    facts = result.facts
    facts.add_document(document)

    for parser in STRUCTURED_PARSERS:
        if not _sniffs(parser, document):
            continue
        parsed = [_parse_safely(parser, document)]
        if parser in OBJECT_PARSERS:
            parsed += [_parse_safely(other, document) for other in OBJECT_PARSERS
                       if other is not parser and _sniffs(other, document)]

        count = 0
        for part in parsed:
            count += facts.add(part.kind, document.source, part.facts)
            facts.problems.extend(part.problems)
        kinds = " + ".join(part.kind for part in parsed if part.facts) or parsed[0].kind
        count += _scan_tokens(document, parsed[0].kind, result)
        result.inputs.append(InputSummary(document.source, kinds, count))
        return

    token_count = _scan_tokens(document, None, result)
    scanned = signatures.scan(document, catalogue)
    facts.problems.extend(scanned.problems)
    count = facts.add(scanned.kind, document.source, scanned.facts) + token_count
    kind = "text" if count else "text (no known error signature)"
    result.inputs.append(InputSummary(document.source, kind, count))


def _sniffs(parser: ModuleType, document: Document) -> bool:
    try:
        return bool(parser.sniff(document))
    except Exception:  # noqa: BLE001 - a parser bug must not lose the other inputs
        logger.exception("sniffing %s with %s failed", document.source, parser.__name__)
        return False


def _scan_tokens(document: Document, claimed_kind: str | None, result: ReadResult) -> int:
    """Find JWTs in a document another parser claimed or in free text."""
    if claimed_kind == jwt.KIND:
        return 0
    tokens = jwt.scan_tokens(document)
    result.facts.problems.extend(tokens.problems)
    if not tokens.facts:
        return 0
    return result.facts.add(tokens.kind, document.source, tokens.facts)


def _parse_safely(parser: ModuleType, document: Document) -> ParseResult:
    try:
        return parser.parse(document)
    except Exception as error:  # noqa: BLE001 - reported as a parse problem, never a crash
        logger.exception("parser %s failed on %s", parser.__name__, document.source)
        kind = getattr(parser, "KIND", parser.__name__.rsplit(".", 1)[-1])
        problem = ParseProblem(document.source, None,
                               f"the {kind} parser failed: {type(error).__name__}: {error}")
        return ParseResult(kind=kind, problems=[problem])


def _documents(paths: Sequence[Path], result: ReadResult) -> Iterable[Document]:
    for path in paths:
        if not path.exists():
            result.facts.skipped.append(Skipped(str(path), "no such file or folder"))
        elif path.is_dir():
            yield from _folder_documents(path, result)
        elif _is_tarball(path):
            yield from _tarball_documents(path, result)
        else:
            document = _file_document(path, result)
            if document is not None:
                yield document


def _folder_documents(folder: Path, result: ReadResult) -> Iterable[Document]:
    if (folder / bundle.MANIFEST_NAME).is_file():
        documents, observations = bundle.read_bundle(folder)
        result.observations.extend(observations)
        yield from documents
        return

    for path in sorted(folder.rglob("*")):
        if path.is_dir() or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.name in ("source.md", "expected.yaml", "README.md"):
            # Case descriptions and expected outcomes are about the evidence, not evidence.
            continue
        if _is_tarball(path):
            yield from _tarball_documents(path, result)
            continue
        document = _file_document(path, result)
        if document is not None:
            yield document


def _file_document(path: Path, result: ReadResult) -> Document | None:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            result.facts.skipped.append(Skipped(
                str(path), f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; "
                           "cut the time window you need with `tail` or `grep` first"))
            return None
        raw = path.read_bytes()
    except OSError as error:
        result.facts.skipped.append(Skipped(str(path), f"cannot read: {error.strerror}"))
        return None
    return _decode(str(path), raw, result)


def _decode(source: str, raw: bytes, result: ReadResult) -> Document | None:
    if b"\x00" in raw[:BINARY_SNIFF_BYTES]:
        result.facts.skipped.append(Skipped(source, "binary file, not text"))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        text = raw.decode("utf-8", errors="replace")
        result.facts.problems.append(ParseProblem(
            source, None, f"not valid UTF-8 at byte {error.start}; undecodable bytes replaced"))
    return Document(source, text)


def _is_tarball(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def _tarball_documents(path: Path, result: ReadResult) -> Iterable[Document]:
    try:
        archive = tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError) as error:
        result.facts.skipped.append(Skipped(str(path), f"not a readable tar archive: {error}"))
        return
    with archive:
        manifest = _bundle_manifest_member(archive)
        if manifest is not None:
            yield from _tarball_bundle_documents(path, archive, manifest, result)
            return
        for member in archive:
            source = f"{path}:{member.name}"
            if not member.isfile():
                continue
            name = Path(member.name).name
            if name.startswith(".") or name in ("source.md", "expected.yaml", "README.md"):
                continue
            if member.size > MAX_FILE_BYTES:
                result.facts.skipped.append(Skipped(source, "member too large"))
                continue
            handle = archive.extractfile(member)
            if handle is None:
                result.facts.skipped.append(Skipped(source, "cannot extract the member"))
                continue
            document = _decode(source, handle.read(), result)
            if document is not None:
                yield document


def _bundle_manifest_member(archive: tarfile.TarFile) -> tarfile.TarInfo | None:
    """Return the manifest of a bundle packed at the archive root or in one top folder."""
    for member in archive.getmembers():
        parts = Path(member.name).parts
        if member.isfile() and parts and parts[-1] == bundle.MANIFEST_NAME and len(parts) <= 2:
            return member
    return None


def _tarball_bundle_documents(path: Path, archive: tarfile.TarFile, manifest: tarfile.TarInfo,
                              result: ReadResult) -> Iterable[Document]:
    # The "data" filter rejects absolute paths, links out of the folder and device files.
    with tempfile.TemporaryDirectory(prefix="mesh-doctor-bundle-") as folder:
        try:
            archive.extractall(folder, filter="data")
        except (tarfile.TarError, OSError) as error:
            result.facts.skipped.append(Skipped(str(path), f"cannot unpack the bundle: {error}"))
            return
        root = Path(folder) / Path(manifest.name).parent
        documents, observations = bundle.read_bundle(root)
        result.observations.extend(observations)
        for document in documents:
            relative = Path(document.source).relative_to(folder) if Path(
                document.source).is_relative_to(folder) else Path(document.source)
            yield Document(f"{path}:{relative}", document.text)
