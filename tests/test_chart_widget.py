"""The error-rate chart draws the series of recorded incidents and narrows its window."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Label, Sparkline

from doctor.logstats import analyze_files
from doctor.tui.widgets_chart import ErrorRateChart, chart_series

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT.parent / "examples"


class ChartApp(App):
    def __init__(self, chart: ErrorRateChart) -> None:
        super().__init__()
        self.chart = chart
        self.windows: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        yield self.chart

    def on_error_rate_chart_window_changed(self, message: ErrorRateChart.WindowChanged) -> None:
        self.windows.append((message.first_minute, message.last_minute))


def test_series_of_sample_incidents():
    for name, code in (("503-upstream-down", "503"), ("401-jwt-expired", "401"),
                       ("403-rbac-principal", "403")):
        summary = analyze_files(sorted((EXAMPLES / name / "logs").glob("*.log")))

        minutes, rows = chart_series(summary)

        labels = [row.label for row in rows]
        assert labels[0] == "error rate"
        assert f"HTTP {code}" in labels, (name, labels)
        assert len(rows[0].values) == len(minutes) >= 1
        assert max(rows[0].values) > 0


def test_chart_narrows_window(tmp_path):
    lines = []
    template = (ROOT / "data" / "recorded" / "envoy-1.40-istio-text-1.24.log").read_text(
        encoding="utf-8").splitlines()[3]
    for minute in range(30):
        stamp = f"[2026-12-04T08:{minute:02d}:10.000Z"
        line = stamp + template[template.index("]"):]
        lines.append(line if minute % 3 else line.replace(" 503 ", " 429 ", 1))
    path = tmp_path / "access.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = analyze_files([path])

    async def scenario() -> ChartApp:
        app = ChartApp(ErrorRateChart(summary))
        async with app.run_test(size=(100, 30)) as pilot:
            app.chart.focus()
            await pilot.press("[", "[", "]")
            await pilot.pause()
            line = app.chart.query_one("#chart-line-1", Sparkline)
            # 30 minutes: `[` cuts 3 from the start, then `[` and `]` cut 2 of the 27 left.
            assert len(line.data) == 30 - 3 - 2 - 2
            heading = str(app.chart.query_one("#chart-heading", Label).render())
            assert "2026-12-04T08:05 .. 2026-12-04T08:27" in heading
            await pilot.press("0")
            await pilot.pause()
        return app

    app = asyncio.run(scenario())

    assert app.windows[0] == ("2026-12-04T08:03", "2026-12-04T08:29")
    assert app.windows[-1] == ("2026-12-04T08:00", "2026-12-04T08:29")
