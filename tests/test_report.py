"""Reports of a real sample incident: valid JSON, readable Markdown, no secrets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from doctor.report import render_json, render_markdown, render_text
from doctor.scan import scan_paths

EXAMPLE = Path(__file__).parent.parent / "examples" / "401-jwt-expired"
JWT_WITH_SIGNATURE = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]{16,}")


@pytest.fixture(scope="module")
def diagnosis():
    return scan_paths([EXAMPLE])


def test_json_report_parses(diagnosis):
    report = json.loads(render_json(diagnosis))

    assert report["findings"][0]["cause_id"] == "jwt-expired"
    assert report["symptoms"][0]["id"] == "http-401"


@pytest.mark.parametrize("render", [render_json, render_markdown, render_text])
def test_report_masks_token_signatures(diagnosis, render):
    output = render(diagnosis)

    assert JWT_WITH_SIGNATURE.search(output) is None


def test_json_report_keeps_masked_token(diagnosis):
    report = render_json(diagnosis)

    assert "Authorization: Bearer eyJ" in report
    assert "<signature masked>" in report


def test_markdown_lists_unknowns_first():
    diagnosis = scan_paths([EXAMPLE.parent / "503-upstream-down"])

    markdown = render_markdown(diagnosis)

    assert diagnosis.coverage.not_checked
    assert markdown.index("could not run") < markdown.index("## Root cause")
