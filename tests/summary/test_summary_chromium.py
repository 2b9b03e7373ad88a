"""The HTML report opened in headless Chromium: the screenshot shows the error-rate chart.

The page is loaded from a file with networking disabled. The chart's
failure bars use FAILED_COLOUR; the test decodes the screenshot and counts
pixels of that colour inside the chart's area, and checks the area is not
a blank single colour.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from doctor.summary import summary_from_journal
from doctor.summary_render import FAILED_COLOUR, render
from summary_helpers import FIXED_NOW, RECORDED_SESSION, png_pixels

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1200, 1400)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed; "
                                "`make test` installs the Debian package chromium")


def _screenshot(page_path, image_path, profile):
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={image_path}",
               page_path.as_uri()]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert image_path.exists(), completed.stderr[-2000:]


def _colour_count(rows, channels, colour, rows_range):
    wanted = bytes(int(colour[index:index + 2], 16) for index in (1, 3, 5))
    count = 0
    for row in rows[rows_range[0]:rows_range[1]]:
        for offset in range(0, len(row), channels):
            if row[offset:offset + 3] == wanted:
                count += 1
    return count


def test_screenshot_shows_chart(tmp_path):
    data = summary_from_journal(RECORDED_SESSION, now=FIXED_NOW).to_dict()
    page = tmp_path / "incident.html"
    page.write_text(render(data, "html"), encoding="utf-8")
    image = tmp_path / "incident.png"

    _screenshot(page, image, tmp_path / "profile")

    width, height, rows = png_pixels(image.read_bytes())
    assert (width, height) == WINDOW
    channels = len(rows[0]) // width
    failed_pixels = _colour_count(rows, channels, FAILED_COLOUR, (0, height))
    assert failed_pixels > 2000, f"only {failed_pixels} pixels of the failure colour"

    chart_rows = [index for index, row in enumerate(rows)
                  if _colour_count([row], channels, FAILED_COLOUR, (0, 1))]
    top, bottom = chart_rows[0], chart_rows[-1]
    distinct = {row[offset:offset + 3] for row in rows[top:bottom + 1]
                for offset in range(0, len(row), channels)}
    assert len(distinct) > 3, "the chart area is blank"
