"""Shared fixtures: where the real sample data lives, and skips when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _sample_data_root() -> Path:
    env = os.environ.get("EQI_SAMPLE_DATA")
    if env:
        return Path(env)
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """Root of the real sample data (env ``EQI_SAMPLE_DATA``, default ``../shared/data``)."""
    root = _sample_data_root()
    if not root.is_dir():
        message = f"sample data not found at {root} (set EQI_SAMPLE_DATA)"
        if os.environ.get("CI"):  # CI has ../shared beside the clone: absence is a failure
            pytest.fail(message)
        pytest.skip(message)
    return root
