"""The agent's voice to the API server: a Lease renewal and a status merge patch, nothing else.

Why this module exists: the agent loop only knows the ``Reporter`` protocol (renew the Lease,
patch the status); this is the implementation that speaks HTTP to a real API server. It is
deliberately small and built on httpx rather than a Kubernetes client library: the car's image
stays light (the official client alone is most of a Python operator's memory), and the fleet
simulator can run ten thousand reporters over one shared ``httpx.AsyncClient`` (one connection
pool, one TLS context) in one process.

What a car writes, and how often (docs/agent.md):

- **Lease** ``coordination.k8s.io/v1`` ``curbside-cars/<car>``: ``holderIdentity`` is the
  car, ``leaseDurationSeconds`` the agent's renewal period, ``renewTime`` (microseconds) is
  updated by **one merge patch per renewal**. The first renewal also sets the holder and the
  duration; if the Lease does not exist yet it is created (that POST is the renewal). A merge
  patch carries no resourceVersion, so it never conflicts and needs no read first.
- **Status**: ``PATCH .../vehiclenodes/<car>/status`` with ``application/merge-patch+json``
  carrying only the agent-owned fields (``vehiclenode.AGENT_OWNED``); anything else is refused
  here, before the API server's admission policy would refuse it there.

Errors become ``agent.ReportError`` subclasses with the HTTP cause chained (``ApiError`` with
the status code and the server's message, ``UnreachableError`` for transport failures), so
the agent logs one line and retries on its next step.

Credentials (``Credentials.load``): a kubeconfig's server, CA and client certificate (files
or inline ``-data``), or a bearer token; without a kubeconfig, the in-cluster ServiceAccount
(token re-read as it rotates, the cluster CA, ``KUBERNETES_SERVICE_HOST``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from curbside_agent import agent, credentials
from curbside_api.v1alpha1 import vehiclenode

Credentials = credentials.Credentials
LEASE_NAMESPACE = "curbside-cars"
VEHICLENODES = "/apis/curbside.dev/v1alpha1/vehiclenodes"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
CAR_USER_PREFIX = "curbside:car:"
CAR_GROUP = "curbside:cars"


class ApiError(agent.ReportError):
    """The API server answered with an error; ``status`` is the HTTP code, ``reason`` its word."""

    def __init__(self, *, method: str, path: str, status: int, reason: str, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFoundError(ApiError):
    """404: the object does not exist."""


class ConflictError(ApiError):
    """409: it exists already (create) or changed underneath (update)."""


class ForbiddenError(ApiError):
    """401 or 403: these credentials may not do this (RBAC or an admission policy said no)."""


class UnreachableError(agent.ReportError):
    """The request did not get an answer (connection refused, TLS failure, time-out)."""


_ERRORS: dict[int, type[ApiError]] = {
    401: ForbiddenError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
}


def micro_time(moment: datetime) -> str:
    """A Kubernetes ``MicroTime`` (RFC 3339, UTC, always six fractional digits)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _skip_httpcore_probe() -> None:
    """httpcore tries ``import sniffio`` whenever it creates a lock (several times per request);
    without sniffio installed each failed import searches ``sys.path`` again, which cost the
    simulator a third of its CPU. A ``None`` entry in ``sys.modules`` makes that import fail at
    once (the documented negative cache), so httpcore takes its asyncio path straight away."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def connect(creds: Credentials, *, max_connections: int = 32, timeout: float = 10.0) -> httpx.AsyncClient:
    """An AsyncClient for the API server; one can serve many reporters (it is a connection pool).

    Keep a pool small (tens of connections) and what is in flight within it: httpcore's pool
    looks at every connection for every queued request, so a large queue costs quadratic CPU.
    The simulator uses several pools instead of one big one.
    """
    _skip_httpcore_probe()
    return httpx.AsyncClient(
        base_url=creds.server,
        verify=creds.ssl_context(),
        auth=creds.auth(),
        timeout=timeout,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=120.0
        ),
    )


class Api:
    """JSON requests to the API server with errors mapped to the agent's own types."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str | int] | None = None,
        answer: bool = True,
    ) -> dict[str, Any]:
        """Send one request; the decoded JSON answer (``{}`` unless ``answer``: writes that do not
        need the stored object skip decoding it), or ``ApiError``/``UnreachableError``."""
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        sent = {"Content-Type": "application/json", **(headers or {})} if content is not None else headers
        try:
            response = await self.client.request(method, path, content=content, headers=sent, params=params)
        except httpx.HTTPError as exc:
            raise UnreachableError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise _error(method, path, response)
        decoded: dict[str, Any] = response.json() if answer and response.content else {}
        return decoded

    async def list_all(
        self, path: str, *, params: dict[str, str | int] | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a list, following ``continue`` in pages of 500."""
        query: dict[str, str | int] = {"limit": 500, **(params or {})}
        items: list[dict[str, Any]] = []
        while True:
            page = await self.request("GET", path, params=query)
            items += page.get("items") or []
            more = (page.get("metadata") or {}).get("continue")
            if not more:
                return items
            query["continue"] = more

    async def aclose(self) -> None:
        await self.client.aclose()


def _error(method: str, path: str, response: httpx.Response) -> ApiError:
    try:
        status = response.json()
    except ValueError:
        status = {}
    kind = _ERRORS.get(response.status_code, ApiError)
    message = str(status.get("message") or response.text[:300]) if isinstance(status, dict) else ""
    reason = str(status.get("reason", "")) if isinstance(status, dict) else ""
    error = kind(method=method, path=path, status=response.status_code, reason=reason, message=message)
    error.__cause__ = httpx.HTTPStatusError(message, request=response.request, response=response)
    return error


def lease_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return base if name is None else f"{base}/{name}"


def lease_body(car: str, *, namespace: str, lease_seconds: int, now: datetime) -> dict[str, Any]:
    """A new Lease held by ``car``, renewed at ``now``."""
    stamp = micro_time(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": car, "namespace": namespace},
        "spec": {
            "holderIdentity": car,
            "leaseDurationSeconds": lease_seconds,
            "acquireTime": stamp,
            "renewTime": stamp,
        },
    }


@dataclasses.dataclass
class CarReporter:
    """One car's ``agent.Reporter`` over a shared ``Api``; counts what it wrote.

    ``clock`` is wall time for ``renewTime`` (the operator compares it with its own clock, so
    in the simulator too it is real time, never simulated time). With ``impersonate`` every
    request carries ``Impersonate-User: curbside:car:<car>`` and ``Impersonate-Group:
    curbside:cars``: one privileged connection pool speaks for many cars, and the API
    server's RBAC and admission policies judge each request as that car's.
    """

    api: Api
    car: str
    lease_seconds: int
    clock: Callable[[], datetime]
    namespace: str = LEASE_NAMESPACE
    impersonate: bool = False
    renewals: int = 0
    patches: int = 0
    _held: bool = dataclasses.field(default=False, repr=False)

    @property
    def headers(self) -> dict[str, str] | None:
        if not self.impersonate:
            return None
        return {"Impersonate-User": CAR_USER_PREFIX + self.car, "Impersonate-Group": CAR_GROUP}

    async def renew_lease(self) -> None:
        """One write: merge-patch ``renewTime`` (and, the first time, holder and duration), or create."""
        now = self.clock()
        spec: dict[str, Any] = {"renewTime": micro_time(now)}
        if not self._held:
            spec.update(holderIdentity=self.car, leaseDurationSeconds=self.lease_seconds)
        path = lease_path(self.namespace, self.car)
        try:
            await self.api.request(
                "PATCH",
                path,
                body={"spec": spec},
                headers={**MERGE_PATCH, **(self.headers or {})},
                answer=False,
            )
        except NotFoundError:
            await self._create(now)
        self._held = True
        self.renewals += 1

    async def _create(self, now: datetime) -> None:
        body = lease_body(self.car, namespace=self.namespace, lease_seconds=self.lease_seconds, now=now)
        try:
            await self.api.request(
                "POST", lease_path(self.namespace), body=body, headers=self.headers, answer=False
            )
        except ConflictError:  # created meanwhile (by enrollment): renew it instead
            patch = {"spec": {"renewTime": body["spec"]["renewTime"], "holderIdentity": self.car}}
            headers = {**MERGE_PATCH, **(self.headers or {})}
            await self.api.request("PATCH", lease_path(self.namespace, self.car), body=patch, headers=headers)

    async def patch_status(self, patch: dict[str, Any]) -> None:
        """Merge-patch the agent-owned status fields (``None`` deletes a field)."""
        foreign = sorted(set(patch) - set(vehiclenode.AGENT_OWNED))
        if foreign:
            raise ValueError(f"status fields {foreign} are not the agent's to write")
        path = f"{VEHICLENODES}/{self.car}/status"
        headers = {**MERGE_PATCH, **(self.headers or {})}
        await self.api.request("PATCH", path, body={"status": patch}, headers=headers, answer=False)
        self.patches += 1

    async def vehiclenode(self) -> dict[str, Any]:
        """The car's VehicleNode as stored (spec and status): a read, for the owner's policy."""
        return await self.api.request("GET", f"{VEHICLENODES}/{self.car}", headers=self.headers)
