"""Locate the shipped rule and playbook folders, in a checkout or an installed package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def rules_dir() -> Path:
    return _data_dir("rules", "doctor._rules")


def playbooks_dir() -> Path:
    return _data_dir("playbooks", "doctor._playbooks")


def _data_dir(folder: str, package: str) -> Path:
    checkout = _CHECKOUT_ROOT / folder
    if checkout.is_dir() and (_CHECKOUT_ROOT / "pyproject.toml").is_file():
        return checkout
    return Path(str(resources.files(package)))
