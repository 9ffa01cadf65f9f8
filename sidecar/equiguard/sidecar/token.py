"""The bearer token of the write endpoints, from a mounted Secret or the environment.

A mounted Secret is updated in place when it is rotated: the file is read
again whenever its modification time changes. A token that is missing or
empty stops the sidecar from starting; one that becomes so while it runs
makes the endpoints that need it answer 503 (never admit anyone) until a
token is back.
"""

from __future__ import annotations

import hmac
import os


class TokenUnavailable(RuntimeError):
    """No token can be read; the message names the file or variable and is safe to return."""


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
                raise TokenUnavailable(f"the environment variable {self._env} holds no token")
            return token
        try:
            stamp = os.stat(self._file).st_mtime
            if stamp != self._stamp:
                with open(self._file, "rb") as file:
                    token = file.read().strip()
                if not token:
                    raise TokenUnavailable(f"the token file {self._file} is empty")
                self._token, self._stamp = token, stamp
        except OSError:
            raise TokenUnavailable(f"the token file {self._file} cannot be read") from None
        return self._token

    def admits(self, authorization: str | None) -> bool:
        """Whether an Authorization header carries the token (compared in constant time).
        TokenUnavailable when there is no token to compare with."""
        token = self.current()
        if not authorization or not authorization.startswith("Bearer "):
            return False
        return hmac.compare_digest(authorization[len("Bearer ") :].strip().encode(), token)
