"""Fixtures shared by the integration tests that drive a local cloud of their own."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_faults_left(lc):
    """After each test, no fault is left armed on the module's local cloud (``lc``)."""
    yield
    lc.clear_faults()
