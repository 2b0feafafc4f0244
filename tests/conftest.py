"""Shared test fixtures: the real data sets beside the repo, and hypothesis profiles."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"

# 'ci' keeps the suite inside its time budget on 2 cores; FNNET_HYPOTHESIS_PROFILE=thorough
# runs many more examples.
settings.register_profile("ci", max_examples=10, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("FNNET_HYPOTHESIS_PROFILE", "ci"))


def _data_subdir(name: str) -> Path:
    path = DATA_DIR / name
    if not path.is_dir():
        pytest.skip(f"real data set not found at {path} (expected ../shared/data/{name} beside the repo root)")
    return path


@pytest.fixture(scope="session")
def house_prices_dir() -> Path:
    """``../shared/data/house-prices`` (Kaggle train.csv/test.csv); skips when absent."""
    return _data_subdir("house-prices")


@pytest.fixture(scope="session")
def rt_polarity_dir() -> Path:
    """``../shared/data/rt-polarity`` (rt-polarity.pos/.neg); skips when absent."""
    return _data_subdir("rt-polarity")
