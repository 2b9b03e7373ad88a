"""Fixtures of the rule tests: the shipped engine, loaded once per module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from doctor.scan import Engine, load_engine

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def engine() -> Engine:
    return load_engine()
