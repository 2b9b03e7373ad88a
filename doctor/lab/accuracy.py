"""The accuracy run: how often Mesh Doctor names the fault the lab injected, one verdict per fault.

    python -m doctor.lab.accuracy [--only FAULT ...] [--markdown FILE]

starts the mesh lab once, and for each fault injects it, captures a bundle
and scans it. The top finding is right when it names the fault's cause,
confirmed or likely, with the expected causal chain. It must also cite
evidence that contains the fault's text at the line where that text is.
It prints the table fault -> top cause -> right/wrong and exits 1 unless
every fault is right.
The accuracy test in tests/lab/ uses the same judge.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from doctor.bundle import write_bundle
from doctor.diagnosis import Diagnosis
from doctor.lab.faults import FAULTS, Fault, FaultUnavailable, reproduce
from doctor.lab.mesh import LabError, MeshLab
from doctor.scan import Engine, load_engine, scan_paths

logger = logging.getLogger(__name__)


@dataclass
class Verdict:
    """The judgement of one fault's diagnosis; `problems` lists every way it missed."""

    fault: str
    expected: str
    top: str | None
    status: str | None
    chain: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how the lab made the fault on this machine
    skipped: str = ""
    seconds: float = 0.0

    @property
    def right(self) -> bool:
        return not self.skipped and not self.problems


def judge(fault: Fault, diagnosis: Diagnosis, bundle: Path | None = None) -> Verdict:
    """Compare the diagnosis of a bundle with what `fault` should produce.

    Problems name files relative to `bundle`'s parent when it is given.
    """
    findings = diagnosis.findings
    if not findings:
        return Verdict(fault.name, fault.cause, None, None, problems=["no finding at all"])
    top = findings[0]
    verdict = Verdict(fault.name, fault.cause, top.cause_id, top.status.value, tuple(top.chain))

    if top.cause_id != fault.cause:
        verdict.problems.append(f"top cause is {top.cause_id}, expected {fault.cause}")
    if top.status.value not in ("confirmed", "likely"):
        verdict.problems.append(f"top finding is only {top.status.value}")
    if fault.chain and tuple(top.chain) != fault.chain:
        verdict.problems.append(f"chain is {' -> '.join(top.chain)}, expected {' -> '.join(fault.chain)}")

    supporting = [evidence for evidence in top.evidence if evidence.supports]
    telltale = [evidence for evidence in supporting if fault.evidence in evidence.text]
    if not supporting:
        verdict.problems.append("the top finding cites no supporting evidence")
    elif not telltale:
        verdict.problems.append(f"no supporting evidence contains {fault.evidence!r}")
    for evidence in supporting:
        problem = _misquoted(evidence.source, evidence.line, evidence.text, bundle)
        if problem and evidence in telltale:
            verdict.problems.append(problem)
        elif problem:
            # A check that paraphrases its input instead of quoting it; listed, not judged.
            verdict.warnings.append(problem)
    return verdict


def _misquoted(source: str, line: int | None, text: str, bundle: Path | None) -> str:
    """Return why a citation does not match its file, or "" when it does or cannot be checked."""
    path = Path(source)
    if line is None or not path.is_file():
        return ""
    if bundle is not None and path.is_relative_to(bundle.parent):
        source = str(path.relative_to(bundle.parent))
    lines = path.read_text(errors="replace").splitlines()
    if not 1 <= line <= len(lines):
        return f"{source}:{line} is past the end of the file ({len(lines)} lines)"
    if text.strip() not in lines[line - 1]:
        return f"{source}:{line} does not contain the cited text {text[:60]!r}"
    return ""


def run_fault(lab: MeshLab, fault: Fault, root: Path, engine: Engine) -> Verdict:
    """Reproduce `fault` in the running lab, write its bundle under `root` and judge the scan."""
    started = time.monotonic()
    scratch = root / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        capture = reproduce(lab, fault, scratch)
    except FaultUnavailable as error:
        return Verdict(fault.name, fault.cause, None, None, skipped=str(error))
    bundle = write_bundle(root / fault.name, capture.observations, capture.files,
                          description=f"Mesh lab fault {fault.name}: {fault.title}")
    verdict = judge(fault, scan_paths([bundle], engine=engine), bundle)
    verdict.notes = list(lab.notes)
    verdict.seconds = time.monotonic() - started
    return verdict


def format_table(verdicts: list[Verdict]) -> str:
    """Return the verdicts as a Markdown table with a total line."""
    rows = ["| # | fault | expected cause | top cause | result |", "| --- | --- | --- | --- | --- |"]
    for verdict in verdicts:
        if verdict.skipped:
            result = f"skipped: {verdict.skipped}"
        elif verdict.right:
            result = "right" + "".join(f" ({note})" for note in verdict.notes)
        else:
            result = "wrong: " + "; ".join(verdict.problems)
        top = f"{verdict.top} ({verdict.status})" if verdict.top else "-"
        group = FAULTS[verdict.fault].group if verdict.fault in FAULTS else ""
        rows.append(f"| {group} | {verdict.fault} | {verdict.expected} | {top} | {result} |")
    warnings = [f"- {verdict.fault}: {warning}" for verdict in verdicts for warning in verdict.warnings]
    judged = [verdict for verdict in verdicts if not verdict.skipped]
    right = sum(verdict.right for verdict in judged)
    share = f"{100 * right / len(judged):.0f}%" if judged else "n/a"
    rows.append("")
    rows.append(f"{right} of {len(judged)} faults diagnosed right ({share}), {len(verdicts) - len(judged)} skipped.")
    if warnings:
        rows += ["", "Citations whose text is not the line they point at:", "", *warnings]
    return "\n".join(rows) + "\n"


def _markdown_page(table: str, elapsed: float) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "# Diagnosis accuracy on the mesh lab\n\n"
        "Each fault of `mesh-doctor lab list` was injected into the real Envoy mesh\n"
        "lab, captured as a bundle and scanned. A fault counts as right when the\n"
        "top finding is the expected cause, confirmed or likely, with the expected\n"
        "causal chain, citing evidence that contains the fault's tell-tale text at\n"
        "the line where it really is. The # column is the fault's number in the\n"
        "lab's list of faults; some numbers have several variants.\n\n"
        "The OOM fault lets the kernel kill Envoy in a memory cgroup where the\n"
        "machine allows it (else SIGKILL), and the MTU fault needs root for two\n"
        "network namespaces; a fault this machine cannot reproduce is listed as\n"
        "skipped with the reason.\n\n"
        f"Run with `make accuracy` on {when}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {elapsed:.0f} s for every fault.\n\n"
        + table
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m doctor.lab.accuracy",
                                     description="Inject every lab fault, scan it, and print how often the top "
                                                 "finding is right.")
    parser.add_argument("--only", action="append", choices=sorted(FAULTS), help="run only this fault (repeatable)")
    parser.add_argument("--markdown", type=Path, help="also write the result as a Markdown page to this file")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("sh").setLevel(logging.WARNING)

    names = options.only or list(FAULTS)
    engine = load_engine()
    verdicts = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mesh-lab-accuracy-") as folder:
        root = Path(folder)
        try:
            with MeshLab(root / "work") as lab:
                for name in names:
                    verdict = run_fault(lab, FAULTS[name], root / "bundles", engine)
                    verdicts.append(verdict)
                    if verdict.skipped:
                        mark = "skip"
                    else:
                        mark = "right" if verdict.right else "WRONG"
                    print(f"{mark:>5}  {name:<22} -> {verdict.top or '-'}  [{' -> '.join(verdict.chain)}]", flush=True)
        except LabError as error:
            print(f"error: the lab failed: {error}", file=sys.stderr)
            return 1
    elapsed = time.monotonic() - started

    table = format_table(verdicts)
    print()
    print(table, end="")
    if options.markdown:
        options.markdown.write_text(_markdown_page(table, elapsed))
        print(f"wrote {options.markdown}")
    return 0 if all(verdict.right or verdict.skipped for verdict in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
