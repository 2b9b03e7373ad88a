"""Wording helpers of the UI: time ranges, chains, short source names, commands."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

from rich.console import Console

from doctor.diagnosis import CauseStatus, Diagnosis, Finding, InputSummary, NotChecked
from doctor.model import Skipped
from doctor.playbooks import load_playbooks
from doctor.tui import formatting

UTC = timezone.utc


def make_finding(cause_id: str, title: str, status: CauseStatus, chain: tuple[str, ...]) -> Finding:
    return Finding(cause_id, title, status, 0.5, chain, (), ())


def test_time_range_same_day():
    first = datetime(2026, 1, 15, 3, 0, 1, tzinfo=UTC)
    last = datetime(2026, 1, 15, 3, 5, 33, tzinfo=UTC)
    assert formatting.time_range(first, last) == "2026-01-15 03:00:01Z → 03:05:33Z (5m32s)"


def test_time_range_across_days():
    first = datetime(2026, 1, 15, 23, 59, 0, tzinfo=UTC)
    last = datetime(2026, 1, 16, 1, 0, 0, tzinfo=UTC)
    assert formatting.time_range(first, last) == (
        "2026-01-15 23:59:00Z → 2026-01-16 01:00:00Z (1h01m)"
    )


def test_time_range_single_or_missing():
    moment = datetime(2026, 1, 15, 3, 0, 1, tzinfo=timezone(timedelta(hours=2)))
    assert formatting.time_range(moment, moment) == "2026-01-15 03:00:01+0200"
    assert formatting.time_range(None, moment) == "2026-01-15 03:00:01+0200"
    assert formatting.time_range(None, None) == "time not recorded"


def test_duration_units():
    assert formatting.duration(timedelta(seconds=42)) == "42s"
    assert formatting.duration(timedelta(minutes=3, seconds=7)) == "3m07s"
    assert formatting.duration(timedelta(hours=2, minutes=5)) == "2h05m"


def test_plural_and_banner():
    assert formatting.plural(1, "check") == "1 check"
    assert formatting.plural(3, "check") == "3 checks"
    one = (NotChecked("a.b", "cause", "why"),)
    assert formatting.coverage_banner(one) == "1 check could not run — see coverage (press c)"
    assert formatting.coverage_banner(one * 2).startswith("2 checks could not run")


def test_chain_text_and_labels():
    finding = make_finding("jwt-expired", "JWT expired", CauseStatus.LIKELY, ("http-401", "jwt-expired"))
    diagnosis = Diagnosis(findings=[finding])
    assert formatting.chain_text(finding.chain) == "http-401 → jwt-expired"
    assert formatting.chain_labels(diagnosis) == {"jwt-expired": "JWT expired"}


def test_finding_matches_ignores_case():
    finding = make_finding("rbac-deny-matched", "Explicit DENY policy matched",
                           CauseStatus.RULED_OUT, ("http-403", "rbac-deny-matched"))
    assert formatting.finding_matches(finding, "deny")
    assert formatting.finding_matches(finding, "HTTP-403")
    assert formatting.finding_matches(finding, "ruled out")
    assert formatting.finding_matches(finding, "")
    assert not formatting.finding_matches(finding, "jwt")


def test_source_root_of_folder_inputs():
    diagnosis = Diagnosis(inputs=[
        InputSummary("examples/503/access.log", "envoy-access-log", 3),
        InputSummary("examples/503/pods/pod.json", "kubernetes", 1),
    ])
    root = formatting.source_root(diagnosis)
    assert root == "examples/503"
    assert formatting.short_source("examples/503/pods/pod.json", root) == "pods/pod.json"
    assert formatting.short_source("elsewhere/file.log", root) == "elsewhere/file.log"


def test_source_root_of_one_file_and_archive():
    one_file = Diagnosis(inputs=[InputSummary("cases/x/envoy.log", "text", 1)])
    assert formatting.source_root(one_file) == "cases/x"

    archive = Diagnosis(
        inputs=[InputSummary("bundles/b.tar.gz:logs/a.log", "text", 1)],
        skipped=[Skipped("bundles/b.tar.gz:bin/core", "binary file, not text")],
    )
    root = formatting.source_root(archive)
    assert root == "bundles"
    assert formatting.short_source("bundles/b.tar.gz:logs/a.log", root) == "b.tar.gz:logs/a.log"


def test_source_root_without_inputs():
    assert formatting.source_root(Diagnosis()) == ""


def test_location_with_and_without_line():
    assert formatting.location("a.log", 12) == "a.log:12"
    assert formatting.location("a.log", None) == "a.log"


def test_command_line_quotes_only_spaces():
    argv = ["kubectl", "get", "endpoints", "{service}", "-n", "{namespace}", "-o", "jsonpath={.x}"]
    assert formatting.command_line(argv) == (
        "kubectl get endpoints {service} -n {namespace} -o jsonpath={.x}"
    )
    assert formatting.command_line(["echo", "two words", ""]) == "echo 'two words' ''"


def test_report_file_name_uses_seconds():
    moment = datetime(2026, 1, 15, 3, 7, 9, tzinfo=UTC)
    assert formatting.report_file_name(moment) == "mesh-doctor-report-20260115-030709.md"


def test_status_text_keeps_appended_style():
    text = formatting.status_text(CauseStatus.CONFIRMED)
    text.append(" title")
    assert text.plain == "confirmed title"
    assert str(text.style) == ""
    assert str(text.spans[0].style) == formatting.STATUS_STYLES[CauseStatus.CONFIRMED]


def test_shorten_middle_keeps_both_ends():
    name = "observations/01-client.curl-default-sleep-7b9f8c6d5-k2x8p---httpbin.txt:19"
    short = formatting.shorten_middle(name, 40)
    assert len(short) == 40
    assert short.startswith("observations/01")
    assert short.endswith("httpbin.txt:19")
    assert formatting.shorten_middle("short.log:3", 40) == "short.log:3"
    assert formatting.shorten_middle(name, 1) == "…"


def test_command_line_quotes_jsonpath_readably():
    argv = ["kubectl", "get", "pod", "{pod}", "-o",
            "jsonpath={range .status.containerStatuses[*]}{.name}{' ready='}{.ready}{'\\n'}{end}"]
    assert formatting.command_line(argv) == (
        "kubectl get pod {pod} -o "
        "\"jsonpath={range .status.containerStatuses[*]}{.name}{' ready='}{.ready}{'\\n'}{end}\""
    )
    assert formatting.command_line(["echo", "it's $HOME"]) == "echo 'it'\"'\"'s $HOME'"
    assert formatting.command_line(["get", "{.items[*]}"]) == "get '{.items[*]}'"


def test_playbook_view_of_shipped_playbook():
    playbook = load_playbooks()["upstream-app-down"]

    names = formatting.placeholders(playbook)
    text = render_plain(formatting.playbook_view(playbook))

    assert "namespace" in names
    assert "end" not in names, "jsonpath {end} is not a placeholder"
    assert playbook.title in text
    for number, step in enumerate(playbook.steps, start=1):
        assert f"{number}. [{step.kind}] {step.title}" in text
    for step in playbook.steps:
        if step.kind == "remediate":
            assert "dry run:" in text
            assert "rollback:" in text
            assert f"$ {formatting.command_line(step.dry_run)}" in " ".join(text.split())


def render_plain(renderable) -> str:
    console = Console(width=400, file=io.StringIO(), record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_placeholders_next_to_jsonpath():
    playbook = load_playbooks()["rbac-deny-matched"]

    names = formatting.placeholders(playbook)

    assert "removed_rule_json" in names, "a placeholder in an argument with JSONPath is still listed"
    assert "end" not in names
