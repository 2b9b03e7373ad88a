"""Fixtures of the incident summary tests: the repository as the working folder."""

from __future__ import annotations

import pytest

from summary_helpers import REPOSITORY


@pytest.fixture(autouse=True)
def in_repository(monkeypatch):
    """Run from the repository, because recorded journals name examples/ relative to it."""
    monkeypatch.chdir(REPOSITORY)
