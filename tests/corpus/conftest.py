"""What every corpus test shares: the sample practice's settings, read once."""

from __future__ import annotations

import pytest

from carecast.config import Settings
from carecast.practice import load_settings
from tests.conftest import SAMPLE_CONFIG


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(SAMPLE_CONFIG / "carecast.yaml")
