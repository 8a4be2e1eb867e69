"""Shared fixtures of the MSRP tests: the RFC 8591 section 10 vectors beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "rfc8591"


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The folder of RFC 8591 example messages; skips the test when it is not there."""
    if not (VECTORS / "fig3-chunk.msrp").is_file():
        pytest.skip("shared/vectors not found beside the checkout")
    return VECTORS
