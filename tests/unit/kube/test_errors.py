"""``kube.errors.translate``: our error types, with a message that always says something."""

from __future__ import annotations

import httpx2

from curbside_operator.kube import errors


def test_a_transport_error_without_text_is_named_by_its_type() -> None:
    # httpx's pool and read timeouts carry no text: without the type the log line would end in
    # "pod x: ".
    err = errors.translate(httpx2.PoolTimeout(""), action="creating pod ns/p")
    assert isinstance(err, errors.TransientError)
    assert str(err) == "creating pod ns/p: PoolTimeout"


def test_a_transport_error_keeps_its_own_text() -> None:
    err = errors.translate(httpx2.ConnectError("connection refused"), action="patching node car-1")
    assert isinstance(err, errors.TransientError)
    assert str(err) == "patching node car-1: connection refused"


def test_anything_else_is_a_kube_error_with_its_text() -> None:
    err = errors.translate(ValueError("bad"), action="listing pods")
    assert type(err) is errors.KubeError
    assert str(err) == "listing pods: bad"
