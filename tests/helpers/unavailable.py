"""What a test does when a part it needs is not here.

It fails, naming the command that brings the part: the project's own scripts
(`make deps`, `make binaries`, `make images`) install everything its tests
need, so a missing part is a fault, never a silent skip.
"""

from __future__ import annotations

from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Fails the test, saying what is missing and what brings it."""
    pytest.fail(reason)
