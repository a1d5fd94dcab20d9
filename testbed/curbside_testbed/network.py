"""The test bed's address plan: every node, pod and Service address inside 198.18.0.0/15.

Why this exists: the test bed runs on a shared machine whose only safe destinations are
loopback and a range reserved for network tests (198.18.0.0/15, RFC 2544's benchmarking block),
which is never routed to a real network. Anything in the bed that carries an address a
client might send a packet to — a kwok Node's InternalIP, the pod IPs kwok hands out, the
Service range and the ``kubernetes`` Service's address in the API server's certificate — is
taken from here, so a scrape, ``kubectl logs`` or kube-proxy rule can never reach anything
else. ``check`` refuses a plan that strays outside the range.

The plan (198.18.0.0/15 is 198.18.0.0-198.19.255.255):

- ``NODES``: 198.18.0.0/20, node InternalIPs (kwok's simulated cars share ``KWOK_NODE_IP``);
- ``REAL_POD_NETS``: 198.18.16.0/20 onwards, one /24 per real node's pod bridge;
- ``KWOK_PODS``: 198.18.128.0/17, the pod IPs kwok assigns (32,768: more than the bed's pods);
- ``SERVICES``: 198.19.0.0/16, the API server's Service range (``API_SERVICE_IP`` first).
"""

from __future__ import annotations

import ipaddress

RESERVED = ipaddress.IPv4Network("198.18.0.0/15")
"""The only non-loopback range the test bed may use."""

NODES = ipaddress.IPv4Network("198.18.0.0/20")
KWOK_NODE_IP = ipaddress.IPv4Address("198.18.0.1")
"""The InternalIP kwok gives every simulated car Node."""

REAL_POD_NETS = ipaddress.IPv4Network("198.18.16.0/20")
"""Room for sixteen real nodes' pod bridges, a /24 each."""

KWOK_PODS = ipaddress.IPv4Network("198.18.128.0/17")
"""Pod IPs kwok assigns to pods on simulated cars."""

SERVICES = ipaddress.IPv4Network("198.19.0.0/16")
"""``--service-cluster-ip-range``."""

API_SERVICE_IP = next(SERVICES.hosts())
"""The ``kubernetes`` Service's ClusterIP (the first of the range): a name on the API server's
certificate."""


def kwok_cidr() -> str:
    """kwok's ``--cidr``: the first pod address and the pool's prefix length."""
    return f"{next(KWOK_PODS.hosts())}/{KWOK_PODS.prefixlen}"


def check() -> None:
    """Refuse a plan with a range outside ``RESERVED`` or two ranges that overlap."""
    ranges = {"NODES": NODES, "REAL_POD_NETS": REAL_POD_NETS, "KWOK_PODS": KWOK_PODS, "SERVICES": SERVICES}
    for name, net in ranges.items():
        if not net.subnet_of(RESERVED):
            raise ValueError(f"{name} {net} is outside {RESERVED}")
    names = list(ranges)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if ranges[a].overlaps(ranges[b]):
                raise ValueError(f"{a} {ranges[a]} overlaps {b} {ranges[b]}")
    for name, address in (("KWOK_NODE_IP", KWOK_NODE_IP), ("API_SERVICE_IP", API_SERVICE_IP)):
        if address not in RESERVED:
            raise ValueError(f"{name} {address} is outside {RESERVED}")


check()
