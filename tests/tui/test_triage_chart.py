"""The triage screen charts the error rate of each sample incident from the facts its scan read."""

from __future__ import annotations

import pytest
from textual.widgets import Label, Sparkline

from doctor.logstats import analyze_files
from doctor.tui.screens.triage import TriageScreen
from doctor.tui.widgets_chart import ErrorRateChart, chart_series
from tui_helpers import REPOSITORY, run_pilot, static_text, wait_for_scan

SAMPLES = (("503-upstream-down", "HTTP 503"), ("401-jwt-expired", "HTTP 401"),
           ("403-rbac-principal", "HTTP 403"))


@pytest.mark.parametrize(("sample", "failing"), SAMPLES)
@run_pilot
async def test_chart_shows_error_rate_of_sample(app_factory, sample, failing):
    expected_minutes, expected_rows = chart_series(
        analyze_files(sorted((REPOSITORY / "examples" / sample / "logs").glob("*.log"))))
    app = app_factory(f"examples/{sample}")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_scan(pilot)
        assert isinstance(app.screen, TriageScreen)
        chart = app.screen.query_one("#error-chart", ErrorRateChart)
        assert app.screen.query_one("#chart-box").display

        rate = chart.query_one("#chart-line-0", Sparkline)
        assert list(rate.data) == expected_rows[0].values
        labels = [str(label.render()) for label in chart.query(Label)]
        assert any(label.startswith(f"{failing}:") for label in labels), labels
        assert chart.window == (expected_minutes[0], expected_minutes[-1])


def _incident_log(folder):
    """Write recorded Envoy access-log lines, one a minute for 30 minutes, every third one a refused 503."""
    recorded = REPOSITORY / "tests" / "data" / "recorded" / "envoy-1.40-istio-text-1.24.log"
    recorded_lines = recorded.read_text(encoding="utf-8").splitlines()
    served, refused = recorded_lines[0], recorded_lines[3]
    lines = []
    for minute in range(30):
        template = refused if minute % 3 == 0 else served
        lines.append(f"[2026-12-04T08:{minute:02d}:10.000Z" + template[template.index("]"):])
    path = folder / "access.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@run_pilot
async def test_key_narrows_chart_window(app_factory, tmp_path):
    app = app_factory(_incident_log(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_scan(pilot)
        chart = app.screen.query_one("#error-chart", ErrorRateChart)
        whole = list(chart.query_one("#chart-line-0", Sparkline).data)
        assert len(whole) == 30
        assert static_text(app.screen.query_one("#chart-window")).startswith(
            "In the window: 30 entries, 10 failing")

        chart.focus()
        await pilot.press("[")
        await pilot.pause()

        # One press cuts a tenth of the 30 minutes from the start: 08:00, 08:01 and 08:02.
        assert list(chart.query_one("#chart-line-0", Sparkline).data) == whole[3:]
        assert chart.window == ("2026-12-04T08:03", "2026-12-04T08:29")
        assert static_text(app.screen.query_one("#chart-window")).startswith(
            "In the window: 27 entries, 9 failing")

        await pilot.press("0")
        await pilot.pause()
        assert list(chart.query_one("#chart-line-0", Sparkline).data) == whole


@run_pilot
async def test_chart_hidden_without_access_log(app_factory):
    app = app_factory("examples/503-upstream-down/kubernetes")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_scan(pilot)
        assert app.screen.log_summary is None
        assert not app.screen.query_one("#chart-box").display
