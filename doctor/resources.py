"""Locate the shipped rule and playbook folders, in a checkout or an installed package.

In a checkout they are the top-level `rules/` and `playbooks/` folders; an
installed package carries them as `doctor/_rules` and `doctor/_playbooks`
(see setup.py).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_ROOT = _PACKAGE_DIR.parent


def rules_dir() -> Path:
    return _data_dir("rules", "_rules")


def playbooks_dir() -> Path:
    return _data_dir("playbooks", "_playbooks")


def _data_dir(folder: str, installed_name: str) -> Path:
    checkout = _CHECKOUT_ROOT / folder
    if checkout.is_dir() and (_CHECKOUT_ROOT / "pyproject.toml").is_file():
        return checkout
    return _PACKAGE_DIR / installed_name
