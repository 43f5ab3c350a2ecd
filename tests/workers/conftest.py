"""Fixtures of the worker tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.workers.cluster import HeldTarget, held_target


@pytest.fixture()
def target() -> Iterator[HeldTarget]:
    """A target that holds each request 0.2 s."""
    with held_target() as held:
        yield held
