"""The bearer token of the write endpoints, from a mounted Secret or the environment.

A mounted Secret is updated in place when it is rotated: the file is read
again whenever its modification time changes.
"""

from __future__ import annotations

import hmac
import os


class BearerToken:
    def __init__(self, file: str, env: str) -> None:
        self._file = file
        self._env = env
        self._stamp: float | None = None
        self._token = b""
        self.current()  # fail at start-up, not at the first outcome

    def current(self) -> bytes:
        if not self._file:
            token = os.environ.get(self._env, "").strip().encode()
            if not token:
                raise RuntimeError(f"the environment variable {self._env} holds no token")
            return token
        stamp = os.stat(self._file).st_mtime
        if stamp != self._stamp:
            with open(self._file, "rb") as file:
                token = file.read().strip()
            if not token:
                raise RuntimeError(f"the token file {self._file} is empty")
            self._token, self._stamp = token, stamp
        return self._token

    def admits(self, authorization: str | None) -> bool:
        """Whether an Authorization header carries the token (compared in constant time)."""
        if not authorization or not authorization.startswith("Bearer "):
            return False
        return hmac.compare_digest(authorization[len("Bearer ") :].strip().encode(), self.current())
