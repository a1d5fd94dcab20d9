"""A watch that stamps every event with the wall time its line arrived.

Why this exists: the visibility tests measure how long a car's report takes to reach a watcher;
``Watch`` follows a collection in a thread and stamps every event with ``time.time()`` the
moment its line arrives (the "seen" side of a visibility latency). The agent tests' ``watch``
fixture (tests/cluster/agent/conftest.py) starts them.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Seen:
    """One watch event and the wall time its line arrived."""

    at: float
    type: str
    object: dict[str, Any]


class Watch:
    """A watch on ``path`` from ``resource_version`` in a background thread; events in ``events``.

    When the API server ends the stream (a timeout, or it dropped a watcher that fell behind),
    the watch resumes from the last resourceVersion it saw, so no event is lost; events that
    arrive late that way are stamped late, as a real client would see them. ``restarts``
    counts resumptions.

    ``keep`` cuts each object down to what the test reads before it is queued. A long watch
    (the simulator's 60,000 events) would otherwise hold every whole object until the test
    reads them (over a gigabyte of dicts), and Python's full garbage collections over that
    heap pause this thread for seconds: events then look late that were not.
    """

    def __init__(
        self,
        client: httpx.Client,
        path: str,
        *,
        resource_version: str,
        timeout_seconds: int = 5,
        keep: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.client, self.path, self.resource_version = client, path, resource_version
        self.timeout_seconds = timeout_seconds
        self.keep = keep
        self.events: queue.Queue[Seen] = queue.Queue()
        self.error: BaseException | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"watch {path}", daemon=True)
        self._thread.start()

    def _stream(self) -> None:
        # A server-side timeout ends the stream every few seconds (it resumes at once), so the
        # thread notices stop() promptly and its socket is never closed under it by another thread.
        # A latency measurement asks for longer streams: each resumption delays what happens
        # while it reconnects.
        params = {
            "watch": "1",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.timeout_seconds),
        }
        with self.client.stream("GET", self.path, params=params, timeout=None) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                at = time.time()
                if self._stop.is_set():
                    return
                if not line:
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    raise RuntimeError(f"watch {self.path}: {event['object'].get('message')}")
                self.resource_version = event["object"]["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    kept = event["object"] if self.keep is None else self.keep(event["object"])
                    self.events.put(Seen(at=at, type=event["type"], object=kept))

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self._stream()
            except (httpx.HTTPError, json.JSONDecodeError, RuntimeError) as exc:
                if not self._stop.is_set():
                    self.error = exc
                return
            self.restarts += 1

    def next(self, *, timeout: float) -> Seen | None:
        """The next event, or None when none came within ``timeout`` (a failed watch raises)."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            assert self.error is None, f"watch {self.path} failed: {self.error}"
            return None

    def stop(self) -> None:
        self._stop.set()
