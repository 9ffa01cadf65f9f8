"""What a test does when a part it needs is not here.

On a developer's machine it skips with the command that brings the part. In CI
(CI=true), or where the part was asked for explicitly, it fails: the project's
own scripts install everything its tests need, so a missing part is a fault.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str, *, asked_for: bool = False) -> NoReturn:
    if asked_for or os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
