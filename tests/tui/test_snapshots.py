"""Snapshots of the triage and finding screens at 120x40 and 80x24, from real scans of examples/.

Regenerate with `pytest tests/tui/test_snapshots.py --snapshot-update` and look
at every changed SVG before committing it.
"""

from __future__ import annotations

from textual.pilot import Pilot

from tui_helpers import settle, wait_for_scan

WIDE = (120, 40)
NARROW = (80, 24)
UPSTREAM_DOWN = "examples/503-upstream-down"
JWT_EXPIRED = "examples/401-jwt-expired"


async def show_triage(pilot: Pilot) -> None:
    await wait_for_scan(pilot)
    await settle(pilot)


async def show_top_finding(pilot: Pilot) -> None:
    await wait_for_scan(pilot)
    await pilot.press("enter")
    await settle(pilot)


async def show_cited_line(pilot: Pilot) -> None:
    await show_top_finding(pilot)
    await pilot.press("enter")
    await settle(pilot)


def test_triage_wide(snap_compare, app_factory):
    """Triage of the 503 example at 120x40.

    You should see the coverage banner first ("N checks could not run — see
    coverage (press c)"), then the line naming examples/503-upstream-down and
    its 19 inputs by kind, and "HTTP 503 Service Unavailable ×15" with its time
    range. Under it the error-rate chart covers the one minute of the sample
    (peak 66.7%, "HTTP 503: 12 in the window") and totals 18 entries, 12
    failing. The findings table ranks "upstream-app-down" first as confirmed,
    with the chain http-503 → upstream-connect-failure → upstream-app-down on
    its second line, and shows the ruled-out causes dimmed at the bottom.
    """
    assert snap_compare(app_factory(UPSTREAM_DOWN), terminal_size=WIDE, run_before=show_triage)


def test_triage_narrow(snap_compare, app_factory):
    """Triage of the 503 example at 80x24: the same content, a shorter chart, cause titles end in an ellipsis."""
    assert snap_compare(app_factory(UPSTREAM_DOWN), terminal_size=NARROW, run_before=show_triage)


def test_finding_wide(snap_compare, app_factory):
    """The top finding of the 401 example at 120x40.

    You should see "confirmed  score 1.00  The JWT had expired when the proxy
    checked it" and the chain http-401 → jwt-expired. The evidence for lists
    access-log lines with jwt_authn_access_denied{Jwt_is_expired} and the "Jwt
    is expired" replies. The evidence against is the Bearer header line, whose
    signature is masked.
    """
    assert snap_compare(app_factory(JWT_EXPIRED), terminal_size=WIDE, run_before=show_top_finding)


def test_finding_narrow(snap_compare, app_factory):
    """The top finding of the 401 example at 80x24: heading, summary, chain and the first cited lines."""
    assert snap_compare(app_factory(JWT_EXPIRED), terminal_size=NARROW, run_before=show_top_finding)


def test_evidence_browser_wide(snap_compare, app_factory):
    """The evidence browser at 120x40, opened from the first cited line of the 401 finding.

    You should see the 19 inputs with their kinds on the left, with the httpbin
    sidecar's log selected. On the right is that log with line numbers, and
    line 4 is highlighted under the cursor.
    """
    assert snap_compare(app_factory(JWT_EXPIRED), terminal_size=WIDE, run_before=show_cited_line)
