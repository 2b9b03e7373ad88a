"""The error-rate chart of access logs: one sparkline per failing response code.

Shows the series of a `doctor.logstats.LogSummary`: the error rate per
minute and, for each failing response code (the symptom: 503, 403, 401,
429, ...), its count per minute. `[` and `]` move the start and the end of
the window inward, `{` and `}` move them back out, and `0` shows the whole
series again. Each change posts `ErrorRateChart.WindowChanged` with the
first and the last minute shown, so the screen can summarize that window.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Label, Sparkline

from doctor.logstats import LogSummary

_STEP = 0.1  # share of the shown minutes one key press cuts or adds back


@dataclass(frozen=True)
class ChartSeries:
    """One row of the chart: its label and a value for every minute."""

    label: str
    values: list[float]


def chart_series(summary: LogSummary) -> tuple[list[str], list[ChartSeries]]:
    """Return the minutes and the rows to draw: the error rate, then each failing code."""
    points = summary.error_rate()
    minutes = [minute for minute, _, _ in points]
    rows = [ChartSeries("error rate", [failing / total if total else 0.0
                                       for _, total, failing in points])]
    for code, values in summary.failure_series().items():
        label = "no response (0)" if code == "0" else f"HTTP {code}"
        rows.append(ChartSeries(label, [float(value) for value in values]))
    return minutes, rows


class ErrorRateChart(VerticalScroll, can_focus=True):
    """Sparklines of the error rate and of each failing code over a window of minutes."""

    DEFAULT_CSS = """
    ErrorRateChart {
        height: auto;
        max-height: 24;
    }
    ErrorRateChart > Label {
        width: 100%;
    }
    ErrorRateChart > Sparkline {
        height: 2;
        margin-bottom: 1;
    }
    """

    BINDINGS = [
        Binding("[", "narrow_start", "Later start"),
        Binding("]", "narrow_end", "Earlier end"),
        Binding("{", "widen_start", "Earlier start", show=False),
        Binding("}", "widen_end", "Later end", show=False),
        Binding("0", "reset", "Whole series"),
    ]

    @dataclass
    class WindowChanged(Message):
        """The engineer changed the window; minutes are `YYYY-MM-DDTHH:MM` in UTC."""

        chart: ErrorRateChart
        first_minute: str
        last_minute: str

    def __init__(self, summary: LogSummary | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._minutes: list[str] = []
        self._rows: list[ChartSeries] = []
        self._start = 0
        self._end = 0
        if summary is not None:
            self._minutes, self._rows = chart_series(summary)
            self._end = len(self._minutes)

    @property
    def window(self) -> tuple[str, str] | None:
        """The first and the last minute shown, or None when there is no series."""
        if not self._minutes:
            return None
        return self._minutes[self._start], self._minutes[self._end - 1]

    def compose(self):
        yield Label(self._heading(), id="chart-heading")
        for index, row in enumerate(self._rows):
            yield Label(self._row_label(row), id=f"chart-label-{index}")
            yield Sparkline(self._shown(row), summary_function=max, id=f"chart-line-{index}")

    async def show_summary(self, summary: LogSummary) -> None:
        """Replace the series with those of `summary` and show the whole of it."""
        self._minutes, self._rows = chart_series(summary)
        self._start, self._end = 0, len(self._minutes)
        # The old rows must be gone before rows with the same ids mount.
        await self.remove_children()
        await self.mount_all(list(self.compose()))

    def action_narrow_start(self) -> None:
        self._move(start=self._start + self._step())

    def action_narrow_end(self) -> None:
        self._move(end=self._end - self._step())

    def action_widen_start(self) -> None:
        self._move(start=self._start - self._step())

    def action_widen_end(self) -> None:
        self._move(end=self._end + self._step())

    def action_reset(self) -> None:
        self._move(start=0, end=len(self._minutes))

    def _step(self) -> int:
        return max(1, int((self._end - self._start) * _STEP))

    def _move(self, start: int | None = None, end: int | None = None) -> None:
        if not self._minutes:
            return
        start = self._start if start is None else start
        end = self._end if end is None else end
        start = min(max(0, start), len(self._minutes) - 1)
        end = max(min(len(self._minutes), end), start + 1)
        if (start, end) == (self._start, self._end):
            return
        self._start, self._end = start, end
        self._redraw()
        first, last = self.window
        self.post_message(self.WindowChanged(self, first, last))

    def _redraw(self) -> None:
        self.query_one("#chart-heading", Label).update(self._heading())
        for index, row in enumerate(self._rows):
            self.query_one(f"#chart-label-{index}", Label).update(self._row_label(row))
            self.query_one(f"#chart-line-{index}", Sparkline).data = self._shown(row)

    def _shown(self, row: ChartSeries) -> list[float]:
        return row.values[self._start:self._end]

    def _heading(self) -> str:
        if not self._minutes:
            return "No access-log entry with a start time to chart."
        first, last = self.window
        return (f"Per minute, {first} .. {last} UTC ({self._end - self._start} minutes); "
                "[ ] narrow, { } widen, 0 whole series")

    def _row_label(self, row: ChartSeries) -> str:
        shown = self._shown(row)
        if row.label == "error rate":
            peak = max(shown, default=0.0)
            return f"Error rate: peak {peak:.1%}"
        return f"{row.label}: {int(sum(shown))} in the window, peak {int(max(shown, default=0))}/min"
