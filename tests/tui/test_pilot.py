"""Drive the app with Textual's Pilot: scan, open a finding, go back, filter, help, export."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from textual.command import CommandPalette
from textual.widgets import DataTable, Static

from doctor.session import KubeContext
from doctor.summary import summary_from_scan
from doctor.summary_render import render as render_summary
from doctor.tui.app import SessionOptions, build_app
from doctor.tui.formatting import report_file_name
from doctor.tui.screens.dialogs import ErrorDialog, HelpScreen
from doctor.tui.screens.evidence import EvidenceScreen
from doctor.tui.screens.export import ExportScreen
from doctor.tui.screens.finding import FindingScreen
from doctor.tui.screens.lists import CoverageScreen, ProblemsScreen
from doctor.tui.screens.session import SessionScreen
from doctor.tui.screens.triage import TriageScreen
from doctor.tui.sources import read_source_lines
from doctor.tui.widgets import FilterInput, SourceView

from tui_helpers import FIXED_NOW, REPOSITORY, run_pilot, settle, static_text, wait_for_scan

SIZE = (120, 40)


def finding_keys(app) -> list[str]:
    table = app.screen.query_one("#findings", DataTable)
    return [str(row.key.value) for row in table.ordered_rows]


@run_pilot
async def test_scan_fills_the_findings_table(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        diagnosis = app.diagnosis

        assert isinstance(app.screen, TriageScreen)
        assert finding_keys(app) == [finding.cause_id for finding in diagnosis.findings]
        symptoms = static_text(app.screen.query_one("#symptoms", Static))
        for symptom in diagnosis.symptoms:
            assert symptom.title in symptoms
        banner = app.screen.query_one("#banner", Static)
        assert banner.display == bool(diagnosis.coverage.not_checked)


@run_pilot
async def test_enter_opens_finding_and_escape_returns(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        top = app.diagnosis.findings[0]

        await pilot.press("enter")
        assert isinstance(app.screen, FindingScreen)
        assert app.screen.finding == top
        chain = static_text(app.screen.query_one("#chain", Static))
        for step in top.chain:
            assert step in chain

        await pilot.press("escape")
        assert isinstance(app.screen, TriageScreen)


@run_pilot
async def test_slash_filters_findings(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        everything = finding_keys(app)
        target = app.diagnosis.findings[-1]

        await pilot.press("slash")
        assert app.screen.query_one(FilterInput).has_focus
        await pilot.press(*target.cause_id)
        assert finding_keys(app) == [
            finding.cause_id
            for finding in app.diagnosis.findings
            if target.cause_id.casefold() in (finding.cause_id + finding.title + " ".join(finding.chain)).casefold()
        ]
        assert target.cause_id in finding_keys(app)

        await pilot.press("enter")
        assert app.screen.query_one("#findings", DataTable).has_focus
        await pilot.press("escape")
        assert finding_keys(app) == everything
        assert isinstance(app.screen, TriageScreen)


@run_pilot
async def test_filter_without_match_empties_table(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        await pilot.press("slash", *"no-such-cause-zz")
        assert finding_keys(app) == []


@run_pilot
async def test_question_mark_opens_help(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = {description: shown.split() for shown, description in app.screen.keys}
        assert "/" in keys["Filter"]
        assert "e" in keys["Export"]
        assert "q" in keys["Quit"]
        assert "c" in keys["Coverage"]
        assert "Back" not in keys

        await pilot.press("escape")
        assert isinstance(app.screen, TriageScreen)


@run_pilot
async def test_help_on_finding_lists_back(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        await pilot.press("enter", "question_mark")

        assert isinstance(app.screen, HelpScreen)
        assert app.screen.screen_name == "Finding"
        keys = {description: shown.split() for shown, description in app.screen.keys}
        assert "esc" in keys["Back"]
        assert "i" in keys["Inputs"]

        await pilot.press("escape")
        assert isinstance(app.screen, FindingScreen)


def _summary_markdown(app) -> str:
    data = summary_from_scan(app.paths, now=FIXED_NOW).to_dict()
    return render_summary(data, "md")


@run_pilot
async def test_e_previews_then_writes_summary(app_factory, tmp_path):
    app = app_factory(export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)

        await pilot.press("e")
        await settle(pilot)

        assert isinstance(app.screen, ExportScreen)
        assert app.screen.output_format == "md"
        assert "## Root cause" in app.screen.preview_text()
        assert "Masked before export" in str(app.screen.query_one("#export-masked").render())
        assert list(tmp_path.iterdir()) == []

        await pilot.press("enter")
        await settle(pilot)

        written = tmp_path / report_file_name(FIXED_NOW)
        assert written.read_text(encoding="utf-8") == _summary_markdown(app)
        messages = [notification.message for notification in app._notifications]
        assert f"Report written to {written}" in messages
        assert isinstance(app.screen, TriageScreen)


@run_pilot
async def test_export_format_choice_writes_html(app_factory, tmp_path):
    app = app_factory(export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        await pilot.press("e")
        await settle(pilot)

        await pilot.press("j")
        assert app.screen.preview_text().startswith("{")
        await pilot.press("h")
        await pilot.press("enter")
        await settle(pilot)

        written = tmp_path / report_file_name(FIXED_NOW, ".html")
        assert written.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@run_pilot
async def test_export_cancel_writes_nothing(app_factory, tmp_path):
    app = app_factory(export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        await pilot.press("e")
        await settle(pilot)

        await pilot.press("escape")
        await settle(pilot)

        assert isinstance(app.screen, TriageScreen)
        assert list(tmp_path.iterdir()) == []


@run_pilot
async def test_export_keeps_existing_report(app_factory, tmp_path):
    existing = tmp_path / report_file_name(FIXED_NOW)
    existing.write_text("earlier report\n", encoding="utf-8")
    app = app_factory(export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)

        await pilot.press("e")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)

        assert existing.read_text(encoding="utf-8") == "earlier report\n"
        second = tmp_path / f"{existing.stem}-2.md"
        assert second.read_text(encoding="utf-8") == _summary_markdown(app)


@run_pilot
async def test_export_failure_shows_error_dialog(app_factory, tmp_path):
    missing = tmp_path / "no-such-folder"
    app = app_factory(export_dir=missing)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)

        await pilot.press("e")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)

        assert isinstance(app.screen, ErrorDialog)
        assert app.screen.error_title == "Export failed"
        assert str(missing) in app.screen.error_message
        await pilot.press("escape")
        assert isinstance(app.screen, TriageScreen)


@run_pilot
async def test_evidence_jump_highlights_cited_line(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        await pilot.press("enter")
        finding = app.screen.finding
        cited = next(item for item in finding.evidence if item.supports and item.line)

        table = app.screen.query_one("#evidence-for", DataTable)
        row = next(index for index, item in enumerate(app.screen.supporting) if item == cited)
        table.move_cursor(row=row)
        await pilot.press("enter")
        await settle(pilot)

        assert isinstance(app.screen, EvidenceScreen)
        view = app.screen.query_one(SourceView)
        assert view.source == cited.source
        assert view.target_number == cited.line
        assert view.cursor_number == cited.line
        lines, _ = read_source_lines(cited.source)
        assert cited.text.strip() in lines[cited.line - 1]

        await pilot.press("escape")
        assert isinstance(app.screen, FindingScreen)


@run_pilot
async def test_evidence_filter_keeps_matching_lines(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        await pilot.press("i")
        await settle(pilot)
        assert isinstance(app.screen, EvidenceScreen)
        view = app.screen.query_one(SourceView)
        lines, _ = read_source_lines(view.source)
        needle = lines[-1].split()[0]

        await pilot.press("slash", *needle)
        visible = view.visible_numbers
        assert visible == [number for number, line in enumerate(lines, start=1)
                        if needle.casefold() in line.casefold()]

        await pilot.press("escape")
        assert view.visible_numbers == list(range(1, len(lines) + 1))


@run_pilot
async def test_c_opens_coverage(app_factory):
    app = app_factory("examples/503-upstream-down")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        not_checked = app.diagnosis.coverage.not_checked
        assert not_checked, "the 503 example has checks that cannot run"

        await pilot.press("c")
        assert isinstance(app.screen, CoverageScreen)
        assert app.screen.query_one(DataTable).row_count == len(not_checked)
        await pilot.press("escape")
        assert isinstance(app.screen, TriageScreen)


@run_pilot
async def test_p_lists_problems_and_skipped(app_factory, tmp_path):
    corpus_log = REPOSITORY / "tests/data/corpus/access-logs/16-istio-json-raw-http-URX-UF-connection-refused-client.log"
    damaged = tmp_path / "damaged.log"
    damaged.write_bytes(corpus_log.read_bytes().replace(b"GET", b"G\xffT", 1))
    missing = tmp_path / "absent.log"
    app = app_factory("examples/503-upstream-down", damaged, missing)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        diagnosis = app.diagnosis
        assert [problem.source for problem in diagnosis.parse_problems] == [str(damaged)]
        assert [skipped.source for skipped in diagnosis.skipped] == [str(missing)]
        problems = static_text(app.screen.query_one("#problems", Static))
        assert "1 parse problem · 1 skipped file" in problems

        await pilot.press("p")
        assert isinstance(app.screen, ProblemsScreen)
        assert app.screen.query_one(DataTable).row_count == 2

        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, EvidenceScreen)
        assert app.screen.query_one(SourceView).source == str(damaged)


@run_pilot
async def test_colon_opens_command_palette(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for title in ("Export report", "Help", "Filter", "Coverage", "Parse problems", "Inputs"):
            assert title in titles

        await pilot.press("colon")
        assert isinstance(app.screen, CommandPalette)


@run_pilot
async def test_q_quits(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        assert app.is_running
        await pilot.press("q")
        assert not app.is_running
        assert app.return_code == 0


@run_pilot
async def test_deleted_input_shows_error_dialog(app_factory, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(REPOSITORY / "examples/401-jwt-expired", bundle)
    app = app_factory(bundle)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        source = app.diagnosis.inputs[1].source
        Path(source).unlink()

        await pilot.press("i")
        await settle(pilot)
        table = app.screen.query_one("#inputs", DataTable)
        table.focus()
        table.move_cursor(row=table.get_row_index(source))
        await settle(pilot)

        assert isinstance(app.screen, ErrorDialog)
        assert app.screen.error_title == "Could not open the input"
        assert source in app.screen.error_message
        await pilot.press("enter")
        assert isinstance(app.screen, EvidenceScreen)


@run_pilot
async def test_title_and_clock_of_session(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        assert app.title == "Mesh Doctor · read-only"
        assert app.diagnosis.generated_at == FIXED_NOW


@run_pilot
async def test_jump_selects_cited_input_narrow(app_factory):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_scan(pilot)
        await pilot.press("enter")
        cited = app.screen.supporting[0]

        await pilot.press("enter")
        await settle(pilot)

        table = app.screen.query_one("#inputs", DataTable)
        row = table.get_row_index(cited.source)
        assert table.cursor_row == row
        row_top = 2 * row  # every input takes two lines: its name and its kind
        assert table.scroll_y <= row_top < table.scroll_y + table.scrollable_content_region.height
        assert app.screen.query_one(SourceView).source == cited.source


@run_pilot
async def test_finding_opens_at_top_narrow(app_factory):
    app = app_factory("examples/403-rbac-principal")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_scan(pilot)
        await pilot.press("enter")
        await settle(pilot)

        assert app.screen.query_one("#finding").scroll_y == 0
        assert app.screen.query_one("#evidence-for", DataTable).has_focus


@run_pilot
async def test_jump_into_bundle_tarball(app_factory, tmp_path):
    bundle = tmp_path / "incident.tar.gz"
    with tarfile.open(bundle, "w:gz") as packed:
        packed.add(REPOSITORY / "examples/401-jwt-expired", arcname="401-jwt-expired")
    app = app_factory(bundle)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        await pilot.press("enter")
        cited = app.screen.supporting[0]
        assert cited.source.startswith(f"{bundle}:401-jwt-expired/")

        await pilot.press("enter")
        await settle(pilot)

        view = app.screen.query_one(SourceView)
        assert view.source == cited.source
        assert view.target_number == cited.line
        member = REPOSITORY / "examples" / cited.source.split(":", 1)[1]
        assert view.line_count == len(member.read_text(encoding="utf-8").splitlines())


@run_pilot
async def test_export_in_session_summarises_journal(tmp_path, monkeypatch):
    monkeypatch.chdir(REPOSITORY)
    options = SessionOptions(journal_root=tmp_path / "sessions", new_id=lambda: "pilot-session",
                             read_context=lambda: KubeContext("lab", "lab", "default"))
    app = build_app([Path("examples/503-upstream-down")], export_dir=tmp_path,
                    clock=lambda: FIXED_NOW, sessions=options)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_scan(pilot)
        await pilot.press("enter", "g")
        await settle(pilot)
        assert isinstance(app.screen, SessionScreen)

        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, ExportScreen)
        await pilot.press("e")
        await settle(pilot)

        assert isinstance(app.screen, ExportScreen)
        assert app.screen.data["source"]["kind"] == "session"
        assert app.screen.data["source"]["session_id"] == "pilot-session"
        assert app.screen.data["header"]["kube_context"] == "lab"
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, SessionScreen)
