"""Our own API error types, so callers never catch a client library's exceptions.

Why this exists: handlers decide what to do by *kind* of failure (gone, conflict, forbidden,
try again), not by HTTP library. Every error chains the original (``raise ... from exc``),
like kopf's ``_cogs/clients/errors.py``, so nothing is lost for debugging.
"""

from __future__ import annotations

import httpx2
from lightkube.core.exceptions import ApiError


class KubeError(RuntimeError):
    """An API call failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(KubeError):
    """The object does not exist (404)."""


class AlreadyExistsError(KubeError):
    """The object already exists (409 on create)."""


class ConflictError(KubeError):
    """A precondition or resourceVersion did not match (409)."""


class ForbiddenError(KubeError):
    """The operator's identity may not do this (403): an RBAC or admission problem."""


class InvalidError(KubeError):
    """The API server refused the object (422); the message names the field."""


class TransientError(KubeError):
    """Worth retrying: throttling, timeouts, 5xx, connection loss."""


def translate(exc: Exception, *, action: str) -> KubeError:
    """Map a client exception to our error type; ``action`` says what we were doing."""
    if isinstance(exc, ApiError):
        code = exc.status.code or 0
        message = f"{action}: {exc.status.message or exc}"
        if code == 404:
            return NotFoundError(message, status=code)
        if code == 409:
            if exc.status.reason == "AlreadyExists":
                return AlreadyExistsError(message, status=code)
            return ConflictError(message, status=code)
        if code == 403:
            return ForbiddenError(message, status=code)
        if code == 422:
            return InvalidError(message, status=code)
        if code == 429 or code >= 500:
            return TransientError(message, status=code)
        return KubeError(message, status=code)
    # Some transport errors (a pool or read timeout) have no text at all: name their type.
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx2.HTTPError | OSError):
        return TransientError(f"{action}: {text}")
    return KubeError(f"{action}: {text}")
