"""The benchmark's PNG: load, replicas and TTFT over time, one column per policy."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)


def plot(results: dict, slo_ttft_s: float, compress: float, path: Path) -> Path:
    """Write the plot of every policy's run to ``path``; x axis in trace minutes."""
    fig, axes = plt.subplots(
        3, len(results), figsize=(5 * len(results), 9), sharex=True, squeeze=False
    )
    for col, (policy, result) in enumerate(results.items()):
        t = [s.t * compress / 60 for s in result.timeline]
        load, rep, ttft = axes[0][col], axes[1][col], axes[2][col]
        load.plot(t, [s.arrivals for s in result.timeline], lw=0.6, color="tab:gray")
        load.set_title(
            f"{policy}: {result.summary['gpu_hours']} GPU-h, "
            f"SLO {result.summary['slo_attainment']:.1%}"
        )
        load.set_ylabel("requests/s (run time)")
        rep.step(
            t, [s.asked for s in result.timeline], where="post", label="asked", color="tab:blue"
        )
        rep.step(
            t, [s.ready for s in result.timeline], where="post", label="ready", color="tab:green"
        )
        rep.set_ylabel("replicas")
        rep.legend(loc="upper right", fontsize=8)
        arrivals = [o.arrival_s * compress / 60 for o in result.outcomes if o.ttft_s is not None]
        values = [o.ttft_s for o in result.outcomes if o.ttft_s is not None]
        ttft.scatter(arrivals, values, s=1, alpha=0.3, color="tab:red")
        ttft.axhline(slo_ttft_s, ls="--", color="black", lw=0.8)
        ttft.set_yscale("log")
        ttft.set_ylabel("TTFT s (per request)")
        ttft.set_xlabel("trace minutes")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_mixes(runs: dict[str, dict], compress: dict[str, float], path: Path) -> Path:
    """One row per load: its arrival rate, and every policy's ready replicas; x in trace
    minutes."""
    fig, axes = plt.subplots(len(runs), 2, figsize=(12, 2.6 * len(runs)), squeeze=False)
    for row, (load, results) in enumerate(runs.items()):
        rate, reps = axes[row][0], axes[row][1]
        scale = compress[load] / 60
        for policy, result in results.items():
            t = [s.t * scale for s in result.timeline]
            label = f"{policy} ({result.summary['slo_attainment']:.1%})"
            reps.step(t, [s.ready for s in result.timeline], where="post", label=label, lw=0.9)
        first = next(iter(results.values()))
        rate.plot(
            [s.t * scale for s in first.timeline],
            [s.arrivals for s in first.timeline],
            lw=0.5,
            color="tab:gray",
        )
        rate.set_ylabel(f"{load}\nrequests/s")
        reps.set_ylabel("ready replicas")
        reps.legend(loc="upper right", fontsize=7)
    axes[-1][0].set_xlabel("trace minutes")
    axes[-1][1].set_xlabel("trace minutes")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
