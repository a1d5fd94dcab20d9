"""The agent's Reporter over HTTP: one write per renewal, agent-owned fields only, errors of its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from curbside_agent import agent, kube

T0 = datetime(2025, 3, 7, 12, 0, 0, 250_000, tzinfo=UTC)
LEASE = "/apis/coordination.k8s.io/v1/namespaces/curbside-cars/leases/car-00007"
Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """A fake API server: records requests, answers from a handler (default: 200 with the body)."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.handler = handler or (lambda request: httpx.Response(200, content=request.content or b"{}"))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def sent(self) -> list[tuple[str, str, Any]]:
        return [(r.method, r.url.path, json.loads(r.content) if r.content else None) for r in self.requests]


def _reporter(server: Server, **options: Any) -> tuple[kube.CarReporter, list[datetime]]:
    clock = [T0]
    client = httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(server))
    reporter = kube.CarReporter(
        kube.Api(client), car="car-00007", lease_seconds=10, clock=lambda: clock[0], **options
    )
    return reporter, clock


def _status(code: int, reason: str, message: str) -> httpx.Response:
    return httpx.Response(
        code, json={"kind": "Status", "status": "Failure", "reason": reason, "message": message}
    )


def test_renewals_are_one_merge_patch_each_holder_and_duration_only_the_first_time() -> None:
    server = Server()
    reporter, clock = _reporter(server)

    async def scenario() -> None:
        await reporter.renew_lease()
        clock[0] += timedelta(seconds=10)
        await reporter.renew_lease()

    asyncio.run(scenario())
    assert server.sent() == [
        (
            "PATCH",
            LEASE,
            {
                "spec": {
                    "renewTime": "2025-03-07T12:00:00.250000Z",
                    "holderIdentity": "car-00007",
                    "leaseDurationSeconds": 10,
                }
            },
        ),
        ("PATCH", LEASE, {"spec": {"renewTime": "2025-03-07T12:00:10.250000Z"}}),
    ]
    assert {r.headers["content-type"] for r in server.requests} == {"application/merge-patch+json"}
    assert reporter.renewals == 2


def test_a_missing_lease_is_created_by_the_renewal() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            return _status(404, "NotFound", 'leases.coordination.k8s.io "car-00007" not found')
        return httpx.Response(201, content=request.content)

    server = Server(handler)
    reporter, _ = _reporter(server)
    asyncio.run(reporter.renew_lease())
    (method, path, body) = server.sent()[1]
    assert (method, path) == ("POST", LEASE.rsplit("/", 1)[0])
    assert body["metadata"] == {"name": "car-00007", "namespace": "curbside-cars"}
    assert body["spec"] == {
        "holderIdentity": "car-00007",
        "leaseDurationSeconds": 10,
        "acquireTime": "2025-03-07T12:00:00.250000Z",
        "renewTime": "2025-03-07T12:00:00.250000Z",
    }
    assert [m for m, _, _ in server.sent()].count("POST") == 1


def test_a_lease_created_meanwhile_is_renewed_instead() -> None:
    answers = iter(
        [_status(404, "NotFound", "gone"), _status(409, "AlreadyExists", "exists"), httpx.Response(200)]
    )
    server = Server(lambda request: next(answers))
    reporter, _ = _reporter(server)
    asyncio.run(reporter.renew_lease())
    assert [m for m, _, _ in server.sent()] == ["PATCH", "POST", "PATCH"]
    assert server.sent()[2][2] == {
        "spec": {"renewTime": "2025-03-07T12:00:00.250000Z", "holderIdentity": "car-00007"}
    }


def test_status_patch_sends_only_agent_owned_fields() -> None:
    server = Server()
    reporter, _ = _reporter(server)
    asyncio.run(reporter.patch_status({"state": "Driving", "predictedDeparture": None}))
    assert server.sent() == [
        (
            "PATCH",
            "/apis/curbside.dev/v1alpha1/vehiclenodes/car-00007/status",
            {"status": {"state": "Driving", "predictedDeparture": None}},
        )
    ]
    assert server.requests[0].headers["content-type"] == "application/merge-patch+json"
    with pytest.raises(ValueError, match=r"\['operator'\] are not the agent's"):
        asyncio.run(reporter.patch_status({"state": "Parked", "operator": {"eligible": True}}))
    assert reporter.patches == 1


@pytest.mark.parametrize(
    ("response", "kind", "status"),
    [
        (_status(403, "Forbidden", "car-00007 cannot patch car-00008"), kube.ForbiddenError, 403),
        (_status(401, "Unauthorized", "Unauthorized"), kube.ForbiddenError, 401),
        (_status(404, "NotFound", "vehiclenodes car-00007 not found"), kube.NotFoundError, 404),
        (_status(422, "Invalid", "status.batteryPercent: Invalid value"), kube.ApiError, 422),
        (httpx.Response(503, text="overloaded"), kube.ApiError, 503),
    ],
    ids=["forbidden", "unauthorized", "not-found", "invalid", "not-json"],
)
def test_api_errors_become_report_errors_with_the_cause(
    response: httpx.Response, kind: type[kube.ApiError], status: int
) -> None:
    reporter, _ = _reporter(Server(lambda request: response))
    with pytest.raises(kind) as caught:
        asyncio.run(reporter.patch_status({"state": "Parked"}))
    assert isinstance(caught.value, agent.ReportError)
    assert caught.value.status == status
    assert "PATCH /apis/curbside.dev/v1alpha1/vehiclenodes/car-00007/status: HTTP" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)


def test_transport_failures_are_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    reporter, _ = _reporter(Server(refuse))
    with pytest.raises(kube.UnreachableError, match="ConnectError: connection refused") as caught:
        asyncio.run(reporter.renew_lease())
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert reporter.renewals == 0


def test_impersonation_speaks_as_the_car() -> None:
    server = Server()
    reporter, _ = _reporter(server, impersonate=True)

    async def scenario() -> None:
        await reporter.renew_lease()
        await reporter.patch_status({"state": "Parked"})
        await reporter.vehiclenode()

    asyncio.run(scenario())
    assert {r.headers["impersonate-user"] for r in server.requests} == {"curbside:car:car-00007"}
    assert {r.headers["impersonate-group"] for r in server.requests} == {"curbside:cars"}


def test_list_all_follows_continue() -> None:
    one, two, three = {"n": 1}, {"n": 2}, {"n": 3}
    pages = {
        "": {"items": [one, two], "metadata": {"continue": "abc"}},
        "abc": {"items": [three], "metadata": {}},
    }
    server = Server(lambda r: httpx.Response(200, json=pages[r.url.params.get("continue", "")]))
    reporter, _ = _reporter(server)
    assert asyncio.run(reporter.api.list_all("/api/v1/nodes")) == [one, two, three]
    assert {r.url.params["limit"] for r in server.requests} == {"500"}
