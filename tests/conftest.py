"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_FIXTURES = SHARED / "fixtures"
OWN_FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def shared_fixtures() -> Path:
    """The captured real payloads in ../shared/fixtures; skips when that folder is absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(
            f"{SHARED_FIXTURES} is absent (a fresh clone has no ../shared): captured payloads not checked"
        )
    return SHARED_FIXTURES
