"""Fixtures of the SIP core tests: the shared RFC 8591 vectors beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


@pytest.fixture
def vectors_dir() -> Path:
    """``shared/vectors/rfc8591`` (skips when the folder is not beside the checkout)."""
    path = SHARED / "vectors" / "rfc8591"
    if not path.is_dir():
        pytest.skip("shared/vectors not found beside the checkout")
    return path
