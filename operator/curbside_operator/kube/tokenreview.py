"""TokenReview: the API server says who a worker's bearer token belongs to.

Why this exists: the dispatcher trusts no car, so a worker proves itself with its pod's
projected ServiceAccount token, and only the API server can vouch for one (signature,
expiry, audience, and that the pod it is bound to still exists). Only ``kube/`` talks to the
API server; this module makes the one call (``create`` on ``tokenreviews``, which the
operator's ClusterRole grants) and hands back the review's status as plain data. Failures are
our own ``errors.KubeError`` types with the cause chained: a refused review (403, RBAC) is a
setup problem and a ``TransientError`` an outage; either way the dispatcher answers 503, never
accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightkube import AsyncClient
from lightkube.models.authentication_v1 import TokenReviewSpec
from lightkube.resources.authentication_v1 import TokenReview

from curbside_operator.kube import errors


async def review_token(client: AsyncClient, token: str, audiences: Sequence[str]) -> dict[str, Any]:
    """The status of a TokenReview of ``token`` for ``audiences`` (``authenticated``, ``user``
    with ``username`` and ``extra``, ``audiences``, ``error``), as a plain dict."""
    request = TokenReview(spec=TokenReviewSpec(token=token, audiences=list(audiences)))
    try:
        answer = await client.create(request)
    except Exception as exc:
        raise errors.translate(exc, action="reviewing a worker's token") from exc
    status = answer.status
    return {} if status is None else dict(status.to_dict())
