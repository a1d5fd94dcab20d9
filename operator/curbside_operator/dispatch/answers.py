"""The dispatcher's HTTP edge: its refusals as JSON answers, and reading a body within a limit.

Why this exists: every refusal a car can get, from the dispatcher, its authenticator, the
ledger or aiohttp itself, must reach the worker as a ``curbside_api.wire.ErrorBody`` with the
status the worker acts on (``worker/curbside_worker/dispatcher.py``), never as a traceback or
a 500 for the car's own mistake. ``server.Dispatcher`` raises; ``errors`` (its middleware)
answers. Reading a body is here too, because a body over its limit is one more such refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from curbside_api import wire
from curbside_operator.dispatch import auth, results, staging
from curbside_operator.dispatch.ledger import Fenced, Quarantined, UnknownJob, UnknownUnit

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpError(Exception):
    """An error answer: status and body, and how long to wait before retrying (0: no header)."""

    def __init__(
        self, status: int, kind: str, message: str, *, retry_after: int = 0, field: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.body = wire.ErrorBody(error=kind, message=message, field=field)


def bad_request(field: str, message: str) -> HttpError:
    return HttpError(400, "BadRequest", f"{field}: {message}", field=field)


def json_answer(
    answer: wire.Answer, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(wire.dump_json(answer), status=status, headers=headers)


def too_large(size: int | None, limit: int) -> HttpError:
    told = "more than" if size is None else f"{size} bytes:"
    return HttpError(413, "TooLarge", f"body: {told} at most {limit} bytes are accepted here", field="body")


async def read(request: web.Request, limit: int) -> bytes:
    """The body, read up to ``limit`` bytes (a chunked body may not say its length first)."""
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise too_large(None, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def unit_of(request: web.Request) -> int:
    text = request.match_info["unit"]
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise bad_request("unit", f"{text!r} is not a unit number")
    return int(text)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn the dispatcher's and the ledger's exceptions into JSON error answers."""
    try:
        return await handler(request)
    except HttpError as error:
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        return json_answer(error.body, status=error.status, headers=headers)
    except auth.AuthError as error:
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        return json_answer(
            wire.ErrorBody(error=error.kind, message=str(error)), status=error.status, headers=headers
        )
    except Fenced as error:
        body = wire.ErrorBody(error="Fenced", message=error.reason, unit=error.unit, attempt=error.attempt)
        return json_answer(body, status=409)
    except staging.QuotaExceeded as error:
        headers = {"Retry-After": str(error.retry_after)}
        return json_answer(
            wire.ErrorBody(error="QuotaExceeded", message=str(error)), status=429, headers=headers
        )
    except Quarantined as error:
        return json_answer(wire.ErrorBody(error="Quarantined", message=str(error)), status=403)
    except (UnknownJob, UnknownUnit) as error:
        return json_answer(wire.ErrorBody(error="NotFound", message=str(error)), status=404)
    except results.ResultError as error:
        return json_answer(wire.ErrorBody(error="ResultStoreError", message=str(error)), status=500)
    except ConnectionResetError:
        # The worker went away while sending its request (its car drove off, its pod stopped):
        # nothing to answer, and nothing wrong here. Not an error with a traceback in the log.
        log.debug("%s %s: the worker hung up mid-request", request.method, request.path)
        return web.Response(status=400, text="connection lost")
    except web.HTTPException as error:  # aiohttp's own: no route, wrong method, body too large
        if error.status < 400:
            raise
        kind = error.reason.replace(" ", "")
        return json_answer(wire.ErrorBody(error=kind, message=error.text or ""), status=error.status)
