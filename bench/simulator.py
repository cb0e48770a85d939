"""The load simulator: replicas of :mod:`bench.capacity` fed by a request list, in real time, each
with its own HTTP metrics endpoint on 127.0.0.1 for a real Prometheus to scrape."""

from __future__ import annotations

import bisect
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.capacity import Profile, Replica, metrics_text
from bench.trace import Request

METRICS_PATH = {"triton": "/metrics", "trtllm-serve": "/prometheus/metrics"}


@dataclass
class Outcome:
    """What happened to one request (times in seconds from the start of the run)."""

    arrival_s: float
    ttft_s: float | None = None
    done_s: float | None = None
    failed: bool = False


@dataclass
class Sample:
    """One second of the run, for the plot."""

    t: float
    arrivals: int
    asked: int
    ready: int
    waiting: int
    worst_ttft_s: float


@dataclass
class SimConfig:
    """Simulator settings; ``startup_s`` is the (min, max) seconds before a new replica serves."""

    runtime: str = "triton"
    profile: Profile = field(default_factory=Profile)
    startup_s: tuple[float, float] = (60.0, 100.0)
    initial_replicas: int = 1
    drain_timeout_s: float = 60.0
    dt: float = 0.05
    seed: int = 1
    serve_metrics: bool = (
        True  # False: no HTTP endpoints (bench.replay reads the replicas directly)
    )


class Simulator:
    """Replays requests against simulated replicas; thread-safe ``set_replicas`` and ``counts``."""

    def __init__(
        self, requests: list[Request], config: SimConfig, on_targets: Callable | None = None
    ):
        self.requests, self.config, self.on_targets = requests, config, on_targets
        self.lock = threading.RLock()
        self.replicas: list[Replica] = []
        self.outcomes = [Outcome(r.arrival_s) for r in requests]
        self.index = {id(r): i for i, r in enumerate(requests)}
        self.arrivals = [r.arrival_s for r in requests]
        self.timeline: list[Sample] = []
        self.servers: dict[str, ThreadingHTTPServer] = {}
        self.rr = 0  # round-robin over ready replicas, as the recipe's ingress balances
        self.now = 0.0
        self.created = 0
        self._next_arrival, self._next_sample = 0, 1.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for _ in range(config.initial_replicas):
            self._add_replica(ready_now=True)

    # --- replicas -------------------------------------------------------------------------------
    def _startup(self, n: int) -> float:
        low, high = self.config.startup_s
        return random.Random(self.config.seed * 1_000_003 + n).uniform(low, high)

    def _add_replica(self, ready_now: bool = False) -> None:
        name = f"sim-{self.created}"
        delay = 0.0 if ready_now else self._startup(self.created)
        self.created += 1
        self.replicas.append(Replica(name, self.now, self.now + delay, self.config.profile))

    def set_replicas(self, n: int) -> None:
        """Ask for ``n`` replicas: new ones start (serving after the start-up delay); removed ones
        drain, picked as a ReplicaSet does (not ready first, then the most recently ready)."""
        with self.lock:
            alive = [r for r in self.replicas if r.gone_s is None and r.draining_since is None]
            for _ in range(n - len(alive)):
                self._add_replica()
            if n < len(alive):
                ranked = sorted(alive, key=lambda r: (r.serving(self.now), -r.ready_s))
                for replica in ranked[: len(alive) - n]:
                    replica.draining_since = self.now

    def set_ready_replicas(self, n: int) -> None:
        """Follow a real Deployment: exactly ``n`` serving replicas, new ones serving at once."""
        with self.lock:
            alive = [r for r in self.replicas if r.gone_s is None and r.draining_since is None]
            for _ in range(n - len(alive)):
                self._add_replica(ready_now=True)
            self.set_replicas(n)

    def sync_pods(self, pods: list[tuple[str, bool, bool]]) -> None:
        """Follow real pods ``(name, ready, terminating)``: a new pod is a replica that holds its
        GPU from now, serves from when it is first seen Ready, and drains once terminating or
        gone."""
        with self.lock:
            seen = {name: (ready, terminating) for name, ready, terminating in pods}
            known = {r.name: r for r in self.replicas}
            for name, (_, terminating) in seen.items():
                if name not in known and not terminating:
                    replica = Replica(name, self.now, math.inf, self.config.profile)
                    self.replicas.append(replica)
                    known[name] = replica
            for replica in self.replicas:
                if replica.gone_s is not None or replica.draining_since is not None:
                    continue
                ready, terminating = seen.get(replica.name, (False, True))
                if terminating and replica.serving(self.now):
                    replica.draining_since = self.now
                elif terminating:
                    replica.gone_s = self.now  # still loading: nothing to drain, the GPU is free
                elif ready and replica.ready_s > self.now:
                    replica.ready_s = self.now

    def counts(self) -> tuple[int, int]:
        """(ready, starting) replicas, not counting terminating ones."""
        with self.lock:
            alive = [r for r in self.replicas if r.gone_s is None and r.draining_since is None]
            ready = sum(1 for r in alive if r.serving(self.now))
            return ready, len(alive) - ready

    def pods(self) -> list[tuple[str, bool, bool]]:
        """(name, ready, terminating) for every replica that still exists, as the HPA lists pods."""
        with self.lock:
            return [
                (r.name, r.serving(self.now), r.draining_since is not None)
                for r in self.replicas
                if r.gone_s is None
            ]

    def replica_seconds(self, since_s: float = 0.0) -> float:
        """Seconds of GPU-holding replicas (from creation until drained) after ``since_s``."""
        with self.lock:
            return sum(
                max(
                    0.0,
                    (r.gone_s if r.gone_s is not None else self.now) - max(r.created_s, since_s),
                )
                for r in self.replicas
            )

    # --- time -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Run the simulation in a thread, in real time from now."""
        self._refresh_endpoints()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="simulator")
        self._thread.start()

    def _loop(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            target = time.monotonic() - t0
            while self.now + self.config.dt <= target:
                self.tick()
            time.sleep(self.config.dt / 2)

    def tick(self) -> None:
        """Advance time by one ``dt``: arrivals, one step of every replica, a timeline sample each
        second.

        The real-time loop calls it to keep pace with the clock; ``bench.replay`` as fast as it
        can."""
        with self.lock:
            self.now += self.config.dt
            self._next_arrival = self._arrive(self._next_arrival)
            self._step()
            if self.now >= self._next_sample:
                self._sample(self._next_sample)
                self._next_sample += 1.0

    def _arrive(self, i: int) -> int:
        routable = [r for r in self.replicas if r.routable(self.now)]
        while i < len(self.requests) and self.requests[i].arrival_s <= self.now:
            if routable:
                self.rr += 1
                routable[self.rr % len(routable)].queue.append(self.requests[i])
            else:
                self.outcomes[i].failed = True
            i += 1
        return i

    def _step(self) -> None:
        changed = False
        for replica in self.replicas:
            if not replica.serving(self.now):
                changed |= self._cancel_if_removed(replica)
                continue
            first, done = replica.step(self.now, self.config.dt)
            for request, t in first:
                self.outcomes[self.index[id(request)]].ttft_s = t - request.arrival_s
            for request, t in done:
                self.outcomes[self.index[id(request)]].done_s = t
            changed |= self._maybe_retire(replica)
            changed |= self.config.serve_metrics and replica.name not in self.servers
        if changed:
            self._refresh_endpoints()

    def _cancel_if_removed(self, replica: Replica) -> bool:
        """A replica removed before it served holds no GPU from then on (a starting pod deleted:
        the kubelet stops it, nothing to drain)."""
        if replica.draining_since is None or replica.gone_s is not None:
            return False
        replica.gone_s = self.now
        return True

    def _maybe_retire(self, replica: Replica) -> bool:
        if replica.draining_since is None:
            return False
        empty = not replica.queue and not replica.active
        if not empty and self.now - replica.draining_since < self.config.drain_timeout_s:
            return False
        for request in list(replica.queue) + [a.request for a in replica.active]:
            self.outcomes[self.index[id(request)]].failed = True
        replica.queue.clear()
        replica.active.clear()
        replica.gone_s = self.now
        return True

    def _sample(self, t: float) -> None:
        ready, starting = self.counts()
        lo, hi = bisect.bisect_right(self.arrivals, t - 1.0), bisect.bisect_right(self.arrivals, t)
        recent = self.outcomes[lo:hi]
        ttfts = [o.ttft_s for o in recent if o.ttft_s is not None]
        waiting = sum(len(r.queue) for r in self.replicas if r.gone_s is None)
        self.timeline.append(
            Sample(t, len(recent), ready + starting, ready, waiting, max(ttfts, default=0.0))
        )

    # --- metrics endpoints ----------------------------------------------------------------------
    def _refresh_endpoints(self) -> None:
        if not self.config.serve_metrics:
            return
        with self.lock:
            live = {r.name: r for r in self.replicas if r.serving(self.now)}
            for name in [n for n in self.servers if n not in live]:
                server = self.servers.pop(name)
                threading.Thread(target=server.shutdown, daemon=True).start()
            for name, replica in live.items():
                if name not in self.servers:
                    self.servers[name] = self._serve(replica)
            targets = {name: server.server_address[1] for name, server in self.servers.items()}
        if self.on_targets is not None:
            self.on_targets(targets)

    def _serve(self, replica: Replica) -> ThreadingHTTPServer:
        sim, path = self, METRICS_PATH[self.config.runtime]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path != path:
                    self.send_error(404)
                    return
                with sim.lock:
                    body = metrics_text(replica, sim.config.runtime).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the scraper gave up (timeout); the next scrape will do

            def log_message(self, *args: object) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(
            target=server.serve_forever, daemon=True, name=f"metrics-{replica.name}"
        ).start()
        return server

    def stop(self) -> None:
        """Stop time and every endpoint; requests still unanswered count as failed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self.lock:
            for outcome in self.outcomes:
                if outcome.done_s is None:
                    outcome.failed = True
            for server in self.servers.values():
                server.shutdown()
                server.server_close()
            self.servers.clear()
