"""Signal sources: file, local HTTP endpoint, memory; and the never-wake rule they carry."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from curbside_agent.signals import reading, sources

DOC = {"timestamp": "2025-03-03T08:00:00Z", "gear": "P", "batteryPercent": 64, "asleep": False}


def test_file_source_reads_the_document(tmp_path: Path) -> None:
    path = tmp_path / "car.json"
    path.write_text(json.dumps(DOC))
    source = sources.FileSource(path)
    assert asyncio.run(source.asleep()) is False
    assert asyncio.run(source.read()).battery_percent == 64


def test_file_source_names_file_and_field_on_bad_content(tmp_path: Path) -> None:
    path = tmp_path / "car.json"
    path.write_text(json.dumps({**DOC, "gear": "Q"}))
    with pytest.raises(reading.ReadingError, match="gear: expected one of") as caught:
        asyncio.run(sources.FileSource(path).read())
    assert caught.value.field == "gear"
    path.write_text("{not json")
    with pytest.raises(reading.ReadingError, match=r"invalid JSON .* \(in .*car.json\)"):
        asyncio.run(sources.FileSource(path).read())


def test_missing_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(sources.SignalsUnavailableError, match="cannot read vehicle signals"):
        asyncio.run(sources.FileSource(tmp_path / "absent.json").asleep())


def _http(handler: httpx.MockTransport, *, asleep_url: str | None = None) -> sources.HttpSource:
    client = httpx.AsyncClient(transport=handler)
    return sources.HttpSource("http://gateway.local/state", asleep_url=asleep_url, client=client)


def test_http_source_reads_state_and_uses_the_cheap_sleep_url() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/asleep":
            return httpx.Response(200, json={"asleep": True})
        return httpx.Response(200, json=DOC)

    source = _http(httpx.MockTransport(handle), asleep_url="http://gateway.local/asleep")

    async def scenario() -> tuple[bool, reading.Reading]:
        try:
            return await source.asleep(), await source.read()
        finally:
            await source.aclose()

    asleep, value = asyncio.run(scenario())
    assert asleep is True
    assert value.battery_percent == 64
    assert seen == ["/asleep", "/state"]


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (httpx.Response(503), sources.SignalsUnavailableError, "503"),
        (httpx.Response(200, json={**DOC, "batteryPercent": -3}), reading.ReadingError, "batteryPercent"),
        (httpx.Response(200, text="<html>"), reading.ReadingError, "invalid JSON"),
    ],
    ids=["server-error", "bad-field", "not-json"],
)
def test_http_source_errors(response: httpx.Response, error: type[Exception], message: str) -> None:
    source = _http(httpx.MockTransport(lambda request: response))
    with pytest.raises(error, match=message):
        asyncio.run(source.read())


def test_memory_source_counts_wakes() -> None:
    asleep = reading.Reading(
        timestamp=datetime(2025, 3, 3, tzinfo=UTC), gear=reading.Gear.PARK, battery_percent=50, asleep=True
    )
    source = sources.MemorySource()
    with pytest.raises(sources.SignalsUnavailableError):
        asyncio.run(source.asleep())
    source.update(asleep)
    assert asyncio.run(source.asleep()) is True
    assert source.wakes == 0
    asyncio.run(source.read())
    assert (source.sleep_checks, source.full_reads, source.wakes) == (2, 1, 1)
