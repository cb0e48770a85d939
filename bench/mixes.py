"""Several request mixes and load shapes side by side, every policy on each, in one run:

    python -m bench.mixes [--trace <csv>] [--out bench/out/mixes] [--only peak,daily]
    python -m bench.mixes --ideal-targets 1,0.9,0.8 [--only peak]   # the ideal follower's sweep
    python -m bench.mixes --seeds 8 [--only peak]                   # ours over 8 draws of each load

Loads: the Azure conversation trace (compress 12, when ``--trace`` is given), and the project's
generators: ``prefill-heavy`` (code completion: prompts ~2000 tokens, outputs ~30), ``decode-heavy``
(prompts ~300, outputs ~500), both on a slow wave, and the chat mix on two shapes: ``peak`` (the
ramp of ``bench.core.SHAPES``) and ``daily`` (a day's cycle compressed into 24 minutes). The same
simulated replica serves them all (``bench.capacity.Profile``: per-token prefill and decode costs),
so its capacity in requests/s follows the mix: ~12/s of code completions, ~2/s of long answers.

Ours divides by the capacity the operator's capacity Job measured on the real node against the
stand-in server (``bench.calibrate`` wrote the record, ``bench.calibration`` reads it through the
operator's own ``autoscale.capacity.from_status``), once, at the Job's default mix (512 prompt
tokens, 128 output tokens); ``--calibration simulated`` runs the same sweep on an in-process
replica instead (``bench.capacity_job``). Its settings are the same for every load.
Beside them, on the generated loads, ``ideal``: the ideal follower at ours' target
(``bench.ideal``: the load's true rate and slope instead of metrics), what a trend-following policy
at that target reaches at best. Everything runs in virtual time (``bench.replay``). Prints one JSON
line per load and policy, then the table of ratios to static, and writes ``<out>/mixes.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import calibration
from bench.bounds import (
    mean_work_s,
    oracle_replica_seconds,
    reactive_replica_seconds,
    work_replica_seconds,
)
from bench.capacity import Profile
from bench.capacity_job import measured_capacity
from bench.core import SHAPES, RunConfig, RunResult, build_config, static_gpu_hours
from bench.ideal import follow
from bench.replay import best_fixed, replay
from bench.trace import CHAT, Mix, Request, load_csv, shaped
from trtllm_operator.autoscale.capacity import Capacity

POLICIES = ("static", "hpa", "ours")
PREFILL_HEAVY = Mix(2000.0, 0.4, (256, 8000), 30.0, 0.5, (4, 200))
DECODE_HEAVY = Mix(300.0, 0.6, (16, 4000), 500.0, 0.5, (16, 2000))
# A flat load with a slow drift of +-10 %, as the trace's hour (requests/s, times the load's scale).
WAVE = ((0.0, 1.0), (150.0, 1.12), (300.0, 0.95), (450.0, 1.1), (600.0, 1.0))
# A day compressed 60x: night trough at 0.25 of the evening peak (hourly points, run seconds).
DAY = (0.35, 0.3, 0.27, 0.25, 0.25, 0.3, 0.4, 0.55, 0.7, 0.8, 0.85, 0.9, 0.9)
DAY += (0.88, 0.87, 0.88, 0.9, 0.95, 1.0, 1.0, 0.9, 0.75, 0.6, 0.45, 0.35)
STARTUP_MEASURED_S = 100.0  # the slowest start-up the simulator draws (60-100 s)
SLO_TTFT_S = 2.0


@dataclass(frozen=True)
class Load:
    """One benchmark load: its requests and the time compression its GPU-hours are scored at."""

    name: str
    requests: list[Request]
    compress: float = 1.0
    shaped: bool = False
    # the straight lines (time_s, requests/s) a generated load was drawn from; None for a trace
    points: tuple[tuple[float, float], ...] | None = None


def scaled(points: tuple[tuple[float, float], ...], rps: float) -> tuple[tuple[float, float], ...]:
    """``points`` with their rates multiplied by ``rps``."""
    return tuple((t, r * rps) for t, r in points)


def day_points(peak_rps: float) -> tuple[tuple[float, float], ...]:
    """The daily cycle as (run seconds, requests/s), one point per (compressed) hour."""
    return tuple((60.0 * hour, share * peak_rps) for hour, share in enumerate(DAY + DAY[:1]))


def loads(trace: str | None, seed_offset: int = 0) -> list[Load]:
    """Every load of the benchmark (the conversation trace only when its path is given); the
    generated ones drawn with their seeds moved by ``seed_offset`` (another draw of the same
    lines)."""
    found = [] if trace is None else [Load("conversation", load_csv(trace, 12.0), 12.0)]
    generated = (
        ("prefill-heavy", scaled(WAVE, 110.0), 11, PREFILL_HEAVY, False),
        ("decode-heavy", scaled(WAVE, 28.0), 12, DECODE_HEAVY, False),
        ("peak", SHAPES["peak"], 7, CHAT, True),
        ("daily", day_points(50.0), 13, CHAT, True),
    )
    return found + [
        Load(name, shaped(points, seed=seed + seed_offset, mix=mix), shaped=ramps, points=points)
        for name, points, seed, mix, ramps in generated
    ]


def config_for(load: Load, profile: Profile, capacity) -> RunConfig:
    """The benchmark's shared settings for one load (``bench.core.build_config``)."""
    args = argparse.Namespace(compress=load.compress, slo_ttft=SLO_TTFT_S, quick=False)
    return build_config(args, load.requests, profile, capacity)


def hours(replica_seconds: float, config: RunConfig) -> float:
    """Replica-seconds as the benchmark's GPU-hours."""
    return replica_seconds * config.sim.profile.gpus * config.compress / 3600


def score_load(load: Load, profile: Profile, capacity) -> tuple[dict, dict[str, RunResult]]:
    """Every policy, the best fixed fleet and the two floors on one load; one row of ratios."""
    config = config_for(load, profile, capacity)
    results = {p: replay(p, load.requests, config) for p in POLICIES}
    static = static_gpu_hours(results, config, load.requests)
    best = best_fixed(load.requests, config)
    window = 60.0 / load.compress
    row = {
        "load": load.name,
        "requests": len(load.requests),
        "capacity_rps": round(1 / mean_work_s(load.requests, profile), 2),
        "static_replicas": config.static_replicas,
        "static_gpu_hours": round(static, 3),
    }
    for policy, result in results.items():
        row[policy] = _cell(result.summary["gpu_hours"], static, result.summary["slo_attainment"])
    if best is not None:
        row["best_fixed"] = _cell(best["gpu_hours"], static, best["slo_attainment"])
        row["best_fixed"]["replicas"] = best["replicas"]
    oracle = oracle_replica_seconds(load.requests, profile, window)
    row["oracle"] = _cell(hours(oracle, config), static)
    lead = config.sim.startup_s[0]
    reactive = reactive_replica_seconds(load.requests, profile, window, lead)
    row["reactive"] = _cell(hours(reactive, config), static)
    row["work"] = _cell(hours(work_replica_seconds(load.requests, profile), config), static)
    if load.points is not None:
        ideal = follow(load.points, load.requests, config, config.ours.target)
        row["ideal"] = _cell(ideal["gpu_hours"], static, ideal["slo_attainment"])
    row["checks"] = checks(row, load.shaped)
    return row, results


def _cell(gpu_hours: float, static: float, attainment: float | None = None) -> dict:
    cell = {"gpu_hours": round(gpu_hours, 3), "vs_static": round(gpu_hours / static, 3)}
    if attainment is not None:
        cell["slo"] = attainment
    return cell


def checks(row: dict, shaped_load: bool) -> dict:
    """The issue's bar on one load: >= 99 % within SLO, no more GPU-hours than the best fixed
    fleet, beating the HPA on attainment, and (shaped loads) within 1.25x the oracle."""
    ours, best = row["ours"], row.get("best_fixed")
    result = {
        "slo_99": ours["slo"] >= 0.99,
        "le_best_fixed": best is not None and ours["gpu_hours"] <= best["gpu_hours"],
        "beats_hpa": ours["slo"] > row["hpa"]["slo"],
    }
    if shaped_load:
        result["le_1.25_oracle"] = ours["gpu_hours"] <= 1.25 * row["oracle"]["gpu_hours"]
    return result


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table: GPU-hours over static (SLO attainment) per policy."""
    head = "| load | req/s per replica | static | hpa | ours | ideal | best fixed | oracle | work |"
    head += " reactive | ours x oracle | reactive x oracle |"
    lines = [head, "|" + "---|" * 12]
    for row in rows:
        cells = [_fmt(row[p]) for p in ("static", "hpa", "ours")]
        cells.append(_fmt(row["ideal"]) if "ideal" in row else "n/a")
        best = row.get("best_fixed")
        cells.append(f"{_fmt(best)} ({best['replicas']})" if best else "none")
        cells += [f"{row[k]['vs_static']:.3f}" for k in ("oracle", "work", "reactive")]
        for name in ("ours", "reactive"):
            cells.append(f"{row[name]['gpu_hours'] / row['oracle']['gpu_hours']:.2f}")
        lines.append(f"| {row['load']} | {row['capacity_rps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(cell: dict) -> str:
    return f"{cell['vs_static']:.3f} ({cell['slo']:.1%})"


def policy_capacity(where: str, profile: Profile) -> tuple[Capacity, dict | str]:
    """What ours divides by and where it came from: a real-node record, or the simulated sweep."""
    if where == "simulated":
        return measured_capacity(profile, SLO_TTFT_S, STARTUP_MEASURED_S), "simulated"
    path = Path(where)
    if not path.exists():
        raise SystemExit(f"{path} not found: run `python -m bench.calibrate` (real node) first")
    record = calibration.read(path)
    capacity = calibration.capacity_from(
        record, profile.max_batch_size, SLO_TTFT_S, STARTUP_MEASURED_S
    )
    return capacity, calibration.summary(record, path)


def ideal_sweep(targets: list[float], only: str, profile: Profile, capacity: Capacity) -> None:
    """The ideal follower at each target on each generated load: one JSON line per load, its
    GPU-hours over static and SLO attainment per target, beside the best fixed fleet's."""
    for load in loads(None):
        if load.points is None or (only and load.name not in only.split(",")):
            continue
        config = config_for(load, profile, capacity)
        static = static_gpu_hours({}, config, load.requests)
        best = best_fixed(load.requests, config)
        row: dict = {"load": load.name, "best_fixed": best and round(best["gpu_hours"] / static, 3)}
        for target in targets:
            summary = follow(load.points, load.requests, config, target)
            row[f"{target:g}"] = _cell(summary["gpu_hours"], static, summary["slo_attainment"])
        print(json.dumps(row), flush=True)


def ours_on_draw(job: tuple[str, int, str]) -> dict:
    """Ours on one draw (load name, seed offset, calibration): GPU-hours over static, attainment,
    scale events."""
    name, offset, where = job
    profile = Profile()
    capacity, _ = policy_capacity(where, profile)
    load = next(x for x in loads(None, offset) if x.name == name)
    config = config_for(load, profile, capacity)
    ours = replay("ours", load.requests, config).summary
    static = static_gpu_hours({}, config, load.requests)
    return {
        "load": name,
        "seed_offset": offset,
        "vs_static": ours["gpu_hours"] / static,
        "slo": ours["slo_attainment"],
        "scale_events": ours["scale_events"],
    }


def seed_sweep(draws: int, only: str, where: str) -> list[dict]:
    """Ours on ``draws`` draws of each generated load (two processes): per load the mean GPU-hours
    over static, the mean and worst SLO attainment and the mean scale events. One draw can flatter
    or sink a policy by several points; a change is judged on these."""
    from concurrent.futures import ProcessPoolExecutor

    names = [x.name for x in loads(None) if not only or x.name in only.split(",")]
    jobs = [(name, offset, where) for name in names for offset in range(draws)]
    with ProcessPoolExecutor(2) as pool:
        runs = list(pool.map(ours_on_draw, jobs))
    rows = []
    for name in names:
        mine = [r for r in runs if r["load"] == name]
        slo = [r["slo"] for r in mine]
        rows.append(
            {
                "load": name,
                "draws": len(mine),
                "vs_static": round(sum(r["vs_static"] for r in mine) / len(mine), 3),
                "slo_mean": round(sum(slo) / len(slo), 4),
                "slo_worst": min(slo),
                "scale_events": round(sum(r["scale_events"] for r in mine) / len(mine), 1),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every load and policy, print the JSON rows and the table, write the plot."""
    parser = argparse.ArgumentParser(description="Autoscaling on several request mixes")
    parser.add_argument("--trace", help="the Azure conversation CSV (left out when not given)")
    parser.add_argument("--out", default="bench/out/mixes")
    parser.add_argument("--only", default="", help="comma-separated load names")
    parser.add_argument(
        "--calibration",
        default=str(calibration.DEFAULT),
        help="a bench.calibrate record (the capacity Job on the real node), or 'simulated': the "
        "same sweep on an in-process replica (bench.capacity_job)",
    )
    parser.add_argument(
        "--ideal-targets",
        default="",
        help="comma-separated targets: instead of the table, the ideal follower (bench.ideal) at "
        "each target on each generated load",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=0,
        help="instead of the table, ours on this many draws of each generated load: mean GPU-hours "
        "over static, mean and worst attainment",
    )
    args = parser.parse_args(argv)
    profile = Profile()
    capacity, source = policy_capacity(args.calibration, profile)
    if args.seeds:
        for row in seed_sweep(args.seeds, args.only, args.calibration):
            print(json.dumps(row), flush=True)
        return 0
    if args.ideal_targets:
        targets = [float(t) for t in args.ideal_targets.split(",") if t]
        ideal_sweep(targets, args.only, profile, capacity)
        return 0
    print(json.dumps({"measured_capacity": capacity.__dict__, "source": source}), flush=True)
    chosen = [x for x in loads(args.trace) if not args.only or x.name in args.only.split(",")]
    rows, runs = [], {}
    for load in chosen:
        row, runs[load.name] = score_load(load, profile, capacity)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(table(rows), flush=True)
    from bench.plot import plot_mixes

    path = plot_mixes(runs, {x.name: x.compress for x in chosen}, Path(args.out) / "mixes.png")
    print(f"wrote {path}", file=sys.stderr)
    return 0 if all(all(r["checks"].values()) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
