"""Fixtures for the engine tests: `make` builds a SimEngine on the pinned scenario of
support.py, with a hand-driven wall clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.ibsim.engine.support import engine_factory


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Any]:
    return engine_factory(tmp_path)
