"""How the worker reads each HTTP status of the dispatcher: stop, drop the unit, or back off."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from curbside_worker import dispatcher as dp


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"error": "X", "message": "m"}'
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, dp.BadRequest),
        (403, dp.Refused),
        (404, dp.UnknownJob),
        (409, dp.Fenced),
        (413, dp.BadRequest),
        (429, dp.Unavailable),  # over the car's staging quota: back off, keep the unit
        (500, dp.Unavailable),
        (503, dp.Unavailable),
    ],
)
def test_each_status_maps_to_what_the_worker_does_next(
    server: http.server.ThreadingHTTPServer, status: int, error: type[dp.DispatcherError]
) -> None:
    _Answer.status = status
    client = dp.DispatcherClient(
        f"http://127.0.0.1:{server.server_address[1]}", namespace="n", name="j", car="c", owner="o", token="t"
    )
    try:
        with pytest.raises(error) as raised:
            client.lease()
        assert type(raised.value) is error
    finally:
        client.close()
