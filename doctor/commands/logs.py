"""`mesh-doctor logs`: the headless summary of Envoy access-log files.

Prints which response codes, flags and details failed, since when, between
whom, and the error rate per minute. Results go to stdout; notes about how
the files were read go to stderr as well as into the summary.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path

NAME = "logs"
HELP = "summarize Envoy access logs (Istio TEXT or JSON, plain or gzip) in a time window"

_BLOCKS = " ▁▂▃▄▅▆▇█"
_SHOWN = 10
_DIMENSIONS = (("Response codes", "response_code"), ("Response flags", "response_flags"),
               ("Response details", "response_code_details"),
               ("Upstream clusters", "upstream_cluster"), ("Routes", "route_name"),
               ("Authorities", "authority"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE",
                        help="access-log files, plain or gzip; - reads standard input")
    parser.add_argument("--since", metavar="DURATION",
                        help="only the last DURATION before the newest entry in the files "
                             "(90s, 15m, 2h, 1d)")
    parser.add_argument("--from", dest="start", metavar="TIME",
                        help="only entries that started at or after TIME (ISO 8601; UTC "
                             "when no zone is given)")
    parser.add_argument("--to", dest="end", metavar="TIME",
                        help="only entries that started before TIME (ISO 8601)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format (default: text); json is the machine contract, "
                             "indented at a terminal and on one line otherwise")


def run(options: argparse.Namespace) -> int:
    from doctor.cli import ExitCode
    from doctor.logstats import LogInputError, analyze_files, parse_duration, parse_time

    try:
        since = parse_duration(options.since) if options.since else None
        start = parse_time(options.start) if options.start else None
        end = parse_time(options.end) if options.end else None
    except LogInputError as error:
        print(f"mesh-doctor logs: {error}", file=sys.stderr)
        return ExitCode.USAGE
    if since is not None and start is not None:
        print("mesh-doctor logs: --since and --from both set the start of the window; "
              "give one of them", file=sys.stderr)
        return ExitCode.USAGE
    if start is not None and end is not None and end <= start:
        print(f"mesh-doctor logs: --to {options.end} is not after --from {options.start}",
              file=sys.stderr)
        return ExitCode.USAGE

    # The system allocator hands the memory of scanned chunks back sooner than
    # Arrow's default jemalloc pool: peak RSS on a 1 GB log went from about
    # 280 MB to 210-230 MB in runs of benchmarks/bench_logs.py.
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    # Python's gc documentation advises gc.freeze() before fork(): later collections
    # skip the frozen objects, so the workers do not copy their pages, and neither
    # does the collection at exit, which took about 25 ms after numpy and pyarrow.
    # This process ends after one summary, so nothing frozen is garbage held too long.
    gc.freeze()
    try:
        # This command runs no other threads, so the workers may be forked processes.
        summary = analyze_files(options.files, since=since, start=start, end=end, processes=True)
    except LogInputError as error:
        print(f"mesh-doctor logs: {error}", file=sys.stderr)
        return ExitCode.USAGE
    for note in summary.notes:
        print(f"mesh-doctor logs: {note}", file=sys.stderr)
    if options.format == "json":
        # json's C encoder runs only without an indent. It wrote the benchmark's
        # 84 minutes in 3 ms, against 14 ms indented, so only a terminal gets indents.
        indent = 2 if sys.stdout.isatty() else None
        sys.stdout.write(json.dumps(summary.to_dict(), indent=indent) + "\n")
    else:
        sys.stdout.write(render_text(summary))

    if all(report.method in ("unreadable", "skipped") for report in summary.files):
        return ExitCode.NO_INPUT
    return ExitCode.OK


def render_text(summary) -> str:
    """Render the summary for a terminal: plain text, widest facts first."""
    lines: list[str] = []
    window = "whole files"
    if summary.window_start or summary.window_end:
        window = f"{summary.window_start or 'start'} .. {summary.window_end or 'end'} UTC"
    lines.append(f"Access logs: {summary.entries} entries, {summary.failures} failing "
                 f"({_percent(summary.failures, summary.entries)}), window: {window}")
    for report in summary.files:
        how = report.method if report.method != "binary-search" else \
            f"binary search, from byte {report.start_offset}"
        lines.append(f"  {report.path}: {report.entries} entries in {report.lines} lines, "
                     f"{report.malformed} malformed; read {report.bytes_read} of "
                     f"{report.size} bytes ({how})")
    if any(report.start_offset for report in summary.files):
        lines.append("  Lines of a file read from a byte offset B are counted from there: "
                     "`tail -c +B+1 FILE | sed -n LINEp` shows line LINE.")
    if summary.outside_window:
        lines.append(f"  {summary.outside_window} entries read were outside the window "
                     "or had no start time")

    series = summary.error_rate()
    if series:
        rates = [failing / total if total else 0.0 for _, total, failing in series]
        lines.append("")
        lines.append(f"Error rate per minute, {series[0][0]} .. {series[-1][0]} "
                     f"(peak {max(rates):.1%}):")
        lines.append("  " + sparkline(rates))

    if not summary.entries:
        in_window = summary.window_start or summary.window_end
        lines.append("")
        lines.append("No access-log entry was read" + (" in the window." if in_window else "."))
    dimensions = _DIMENSIONS if summary.entries else ()
    for title, dimension in dimensions:
        totals = summary.totals(dimension)
        lines.append("")
        lines.append(f"{title}:")
        for value, count in totals.most_common(_SHOWN):
            lines.append(f"  {count:>10}  {_show(value)}")
        if len(totals) > _SHOWN:
            lines.append(f"  ... {len(totals) - _SHOWN} more")

    kinds = summary.failure_kinds()
    if kinds:
        lines.append("")
        lines.append("Failure kinds (code flags details: count, first .. last):")
        for kind in kinds[:20]:
            lines.append(f"  {kind.response_code} {_show(kind.response_flags)} "
                         f"{_show(kind.response_code_details)}: {kind.count}")
            lines.append(f"      first {kind.first.second} at {kind.first.source}:{kind.first.line}")
            lines.append(f"      last  {kind.last.second} at {kind.last.source}:{kind.last.line}")
        if len(kinds) > 20:
            lines.append(f"  ... {len(kinds) - 20} more kinds (see --format json)")

    for title, top in (("Top failing paths", summary.failing_paths),
                       ("Top failing callers", summary.failing_callers),
                       ("Top failing upstream hosts", summary.failing_upstream_hosts)):
        if not top.counts:
            continue
        lines.append("")
        lines.append(title + (" (approximate counts)" if top.approximate else "") + ":")
        for value, count in top.top():
            lines.append(f"  {count:>10}  {value}")

    lines.append("")
    if summary.malformed:
        lines.append(f"Malformed lines: {summary.malformed} (not access-log entries; "
                     f"the first {len(summary.problems)} listed)")
        for problem in summary.problems[:20]:
            lines.append(f"  {problem.source}:{problem.line}: {problem.message}")
    else:
        lines.append("Malformed lines: none")
    for note in summary.notes:
        lines.append(f"Note: {note}")
    return "\n".join(lines) + "\n"


def sparkline(values: list[float], width: int = 72) -> str:
    """Draw values between 0 and their maximum as Unicode block characters.

    More values than `width` are merged into `width` buckets by their maximum,
    so a short spike stays visible.
    """
    if not values:
        return ""
    if len(values) > width:
        size = len(values) / width
        values = [max(values[int(index * size):max(int((index + 1) * size), int(index * size) + 1)])
                  for index in range(width)]
    top = max(values) or 1.0
    steps = len(_BLOCKS) - 1
    return "".join(_BLOCKS[round(value / top * steps)] for value in values)


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "0%"


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(value) if value else "-"
    return "-" if value is None else str(value)
