"""The bench's figures as PNG files (matplotlib, no display needed).

Why this exists: a table gives p50 and p99; a plot shows the shape: how the baseline's pods
trickle back over minutes while Curbside's return in seconds, and how the operator's memory
moves through the run. Each function reads only the results document, so the figures can be
redrawn from an old ``results.json`` (``curbside bench --replot DIR``).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

CURBSIDE, DEFAULT, SHORTEST = "#1f77b4", "#d62728", "#ff7f0e"


def departure(doc: dict[str, Any], path: Path) -> Path:
    """p50 / p99 of departure → replacement, log scale: Curbside vs both baselines."""
    fig = doc["scenarios"]["departure"]
    cur, base = fig["curbside"], fig["baseline"]
    bars = [
        ("Curbside\nannounced", cur["announced"]["replacement_bound_s"], CURBSIDE),
        ("Curbside\nsilent", cur["silent"]["replacement_bound_s"], CURBSIDE),
        ("Kubernetes\ndefault 300 s", base.get("single-default", {}).get("reaction_s", {}), DEFAULT),
        ("Kubernetes\ntolerationSeconds 0", base.get("single-shortest", {}).get("reaction_s", {}), SHORTEST),
    ]
    ax = plt.figure(figsize=(8, 4.2)).gca()
    for i, (_, s, colour) in enumerate(bars):
        if s.get("n"):
            ax.bar(i - 0.18, s["p50"], 0.36, color=colour, alpha=0.55, label="p50" if i == 0 else None)
            ax.bar(i + 0.18, s["p99"], 0.36, color=colour, label="p99" if i == 0 else None)
            ax.text(i + 0.18, s["p99"], f"{s['p99']:.3g} s", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("seconds until a replacement pod is bound (log)")
    ax.set_title(f"Departure reaction, {doc['cars']:,} cars")
    ax.legend(fontsize=8)
    return _save(path)


def mass(doc: dict[str, Any], path: Path) -> Path:
    """Share of displaced work re-placed vs time since the first car left."""
    fig = doc["scenarios"]["mass_departure"]
    ax = plt.figure(figsize=(8, 4.2)).gca()
    cur = fig["curbside"]
    curves = [("Curbside", cur, CURBSIDE)]
    for key, label, colour in (
        ("default", "default 300 s", DEFAULT),
        ("shortest", "tolerationSeconds 0", SHORTEST),
    ):
        curves.append((f"Kubernetes, {label}", fig["baseline"].get(f"mass-{key}", {}), colour))
    for label, f, colour in curves:
        times = f.get("replaced_after_s") or []
        total = f.get("displaced_pods") or len(times)
        if times and total:
            xs = [0.0, *times]
            ys = [0.0, *(min(1.0, (i + 1) / total) for i in range(len(times)))]
            ax.step(xs, ys, where="post", color=colour, label=label)
    if deleted := cur.get("deleted_after_s"):
        ys = [(i + 1) / len(deleted) for i in range(len(deleted))]
        ax.step(
            [0.0, *deleted],
            [0.0, *ys],
            where="post",
            color=CURBSIDE,
            linestyle=":",
            label="Curbside: pods displaced",
        )
    ax.set_xlabel("seconds since the first car left")
    ax.set_ylabel("share of displaced pods re-placed")
    ax.set_title("Mass departure: 20 % of the cars leave within 60 s")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    return _save(path)


def placement(doc: dict[str, Any], path: Path) -> Path:
    fig = doc["scenarios"]["placement"]
    names = ("Curbside operator", "kube-scheduler")
    values = [
        fig["curbside"]["throughput"].get("average", 0.0),
        fig["kube_scheduler"]["throughput"].get("average", 0.0),
    ]
    ax = plt.figure(figsize=(5, 4)).gca()
    ax.bar(names, values, color=(CURBSIDE, DEFAULT))
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.0f}/s", ha="center", va="bottom")
    ax.set_ylabel("pods placed per second (average)")
    ax.set_title(f"Placement throughput, {fig['curbside']['pods']:,} pods")
    return _save(path)


def footprint(doc: dict[str, Any], path: Path) -> Path:
    """The operator's RSS and CPU use over the run, the scenarios marked."""
    fig = doc["scenarios"]["footprint"]
    line = fig["timeline"]
    fig_, ax = plt.subplots(figsize=(9, 4.2))
    if line:
        t = [p["t"] for p in line]
        ax.plot(t, [p["rss_mib"] for p in line], color=CURBSIDE, label="RSS (MiB)")
        cpu = [0.0] + [
            (b["cpu_s"] - a["cpu_s"]) / max(1e-3, b["t"] - a["t"]) for a, b in itertools.pairwise(line)
        ]
        twin = ax.twinx()
        twin.plot(t, cpu, color=DEFAULT, alpha=0.5, linewidth=0.8, label="CPU (cores)")
        twin.set_ylabel("CPU (cores)")
    for mark in fig["marks"]:
        ax.axvline(mark["t"], color="grey", linewidth=0.5)
        ax.text(mark["t"], ax.get_ylim()[1], mark["phase"], rotation=90, va="top", fontsize=7)
    ax.set_xlabel("seconds since the operator started")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title("Operator footprint over the run")
    fig_.legend(fontsize=8, loc="lower right")
    return _save(path)


def inference(doc: dict[str, Any], path: Path) -> Path:
    rows = doc["scenarios"]["inference"]["rows"]
    ax = plt.figure(figsize=(6, 4)).gca()
    for i, r in enumerate(rows):
        ax.bar(
            i - 0.2, r["inprocess_items_per_s"], 0.4, color=DEFAULT, label="in-process" if i == 0 else None
        )
        ax.bar(
            i + 0.2, r["triton_items_per_s"], 0.4, color=CURBSIDE, label="through Triton" if i == 0 else None
        )
        ax.text(i + 0.2, r["triton_items_per_s"], f"×{r['ratio']:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(rows)), [r["model"] for r in rows])
    ax.set_ylabel("items per second")
    ax.set_title("Inference path: Triton vs in-process, same batches")
    ax.legend(fontsize=8)
    return _save(path)


def _save(path: Path) -> Path:
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close("all")
    return path


ALL = {
    "departure": departure,
    "mass_departure": mass,
    "placement": placement,
    "footprint": footprint,
    "inference": inference,
}


def draw(doc: dict[str, Any], folder: Path) -> list[Path]:
    """Every figure whose scenario is in ``doc``, into ``folder``."""
    return [
        draw_one(doc, folder / f"{name}.png") for name, draw_one in ALL.items() if name in doc["scenarios"]
    ]
