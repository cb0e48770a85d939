"""The LLMDeployment status: phase, conditions and numbers, from what the operator observed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trtllm_operator.api.models import LLMDeploymentSpec
from trtllm_operator.plan import conditions as c
from trtllm_operator.plan import names
from trtllm_operator.plan.actions import Event
from trtllm_operator.plan.pods import PodProblem, summary
from trtllm_operator.plan.runtimes import deployment_ports, runtime_for


@dataclass(frozen=True)
class StatusFacts:
    """Everything the status depends on, as decided by plan.desired from what was observed."""

    generation: int | None
    problem: tuple[str, str] | None = None  # (reason, message) that stops progress
    engine: dict[str, Any] = field(default_factory=dict)  # status.engine: name, key, gpu, reused
    engine_status: dict[str, Any] = field(default_factory=dict)  # the target LLMEngine's status
    served_engine: str | None = None  # engine the live Deployment serves
    deployment: dict[str, Any] | None = None  # the live Deployment
    desired_replicas: int = 0
    adapters_pending: list[str] = field(default_factory=list)
    pod_problems: list[PodProblem] = field(
        default_factory=list
    )  # the serving pods', most telling first
    was_serving: bool = False  # the last status was Ready or Degraded
    apply_error: tuple[str, str] | None = None  # (ApplyFailed, message): a child was refused
    claim_pending: tuple[str, str] | None = None  # (VolumePending, why): the cache claim is unbound
    overrides_ignored: tuple[str, ...] = ()  # "<path>: <why>" of each override not applied
    cache: dict[str, Any] | None = (
        None  # status.cache: the cache claim's retention (plan.cache_claim)
    )


def rollout_done(deployment: dict[str, Any] | None, desired: int) -> bool:
    """True when the Deployment observed its latest spec and every replica is updated, available."""
    if deployment is None:
        return False
    st = deployment.get("status") or {}
    current = st.get("observedGeneration") == deployment["metadata"].get("generation")
    counts = (st.get("updatedReplicas", 0), st.get("availableReplicas", 0), st.get("replicas", 0))
    return current and counts == (desired, desired, desired)


def deployment_status(
    name: str,
    namespace: str,
    spec: LLMDeploymentSpec | None,
    seen: StatusFacts,
    old_conditions: list[dict[str, Any]],
    now: str,
) -> dict[str, Any]:
    """The whole status subresource; equal input gives equal output, so an idle reconcile writes
    nothing."""
    conds = _conditions(seen)
    live = (seen.deployment or {}).get("status") or {}
    ready_replicas = int(live.get("readyReplicas") or 0)
    status: dict[str, Any] = {
        "phase": _phase(seen, conds),
        "observedGeneration": seen.generation,
        "conditions": c.merge(old_conditions, conds, now),
        "replicas": int(live.get("replicas") or 0),
        "readyReplicas": ready_replicas,
        "desiredReplicas": seen.desired_replicas,
        "ready": f"{ready_replicas}/{seen.desired_replicas}",
        "selector": ",".join(f"{k}={v}" for k, v in sorted(names.pod_selector(name).items())),
    }
    if seen.engine:
        status["engine"] = seen.engine
    if spec is not None and seen.deployment is not None:
        status["endpoints"] = endpoints(name, namespace, spec)
    image = serving_image(seen.deployment)
    if image:
        status["image"] = image
    if seen.cache:
        status["cache"] = seen.cache
    return status


def serving_image(deployment: dict[str, Any] | None) -> str:
    """The image the Deployment's server container runs (operator image overrides applied), or
    ""."""
    pod = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    return next((c["image"] for c in pod.get("containers") or [] if c.get("name") == "server"), "")


def endpoints(name: str, namespace: str, spec: LLMDeploymentSpec) -> list[dict[str, Any]]:
    """Service DNS names and ports a client uses: the runtime's client endpoints, on the Service's
    ports."""
    host = f"{names.serving(name)}.{namespace}.svc"
    numbers = dict(deployment_ports(spec))
    return [
        {"name": e.port, "host": host, "port": numbers[e.port], "protocol": e.protocol}
        for e in runtime_for(spec.serving.runtime).client_endpoints
    ]


def _conditions(seen: StatusFacts) -> list[dict[str, Any]]:
    gen = seen.generation
    engine_ready = _engine_ready(seen)
    issue = pod_issue(seen)
    serving_target = seen.served_engine is not None and seen.served_engine == seen.engine.get(
        "name"
    )
    done = serving_target and rollout_done(seen.deployment, seen.desired_replicas) and issue is None
    degraded = _degraded(seen)
    ready = (
        done and engine_ready[0] == "True" and not seen.adapters_pending and not seen.apply_error
    )
    why_not = _why_not_ready(seen, engine_ready, serving_target, issue)
    return [
        c.make("EngineReady", *engine_ready, gen),
        c.make("Available", *_available(seen), gen),
        c.make("Progressing", *_progressing(seen, done, degraded, engine_ready, why_not), gen),
        c.make(
            "Degraded",
            "True" if degraded else "False",
            *(degraded or (c.AS_EXPECTED, "No problem found.")),
            gen,
        ),
        c.make(
            "Ready",
            "True" if ready else "False",
            c.READY if ready else c.NOT_READY,
            "The model is served by the current engine on every desired replica."
            if ready
            else why_not,
            gen,
        ),
        *overrides_condition(seen),
    ]


def overrides_condition(seen: StatusFacts) -> list[dict[str, Any]]:
    """OverridesApplied=False (OverrideIgnored) naming every override the operator had to drop
    for its own values; no condition while every override is applied."""
    if not seen.overrides_ignored:
        return []
    message = (
        "The operator kept its own values for these overrides (its selectors, GPU placement, "
        f"env and roll hashes need them): {'; '.join(seen.overrides_ignored)}."
    )
    return [c.make("OverridesApplied", "False", c.OVERRIDE_IGNORED, message, seen.generation)]


def pod_issue(seen: StatusFacts) -> tuple[str, str] | None:
    """(reason, message) of the most telling serving pod problem, or None."""
    return summary(seen.pod_problems) if seen.deployment is not None else None


def pods_failing(seen: StatusFacts) -> bool:
    """Failing serving pods degrade the deployment: a crash, OOM, image or config error always; pods
    that cannot be scheduled only once a replica serves or served (before that the first rollout
    waits for capacity, phase Pending)."""
    issue = pod_issue(seen)
    if issue is None:
        return False
    return issue[0] != c.UNSCHEDULABLE or _available_replicas(seen) > 0 or seen.was_serving


def _available_replicas(seen: StatusFacts) -> int:
    return int(((seen.deployment or {}).get("status") or {}).get("availableReplicas") or 0)


def _engine_ready(seen: StatusFacts) -> tuple[str, str, str]:
    if seen.problem:
        return "False", seen.problem[0], seen.problem[1]
    cond = c.find(seen.engine_status.get("conditions"), "Ready") or {}
    name = seen.engine.get("name", "")
    if cond.get("status") == "True":
        reason = c.ENGINE_REUSED if seen.engine.get("reused") else c.ENGINE_READY
        return "True", reason, f"Engine {name} is built for {seen.engine.get('gpu', '')}."
    return (
        "False",
        cond.get("reason") or c.BUILDING,
        cond.get("message") or f"Engine {name} is being prepared.",
    )


def _available(seen: StatusFacts) -> tuple[str, str, str]:
    if seen.desired_replicas == 0 and seen.deployment is not None:
        return "True", c.SCALED_TO_ZERO, "Scaled to zero replicas."
    live = _available_replicas(seen)
    if live:
        return "True", c.AVAILABLE, f"{live} replica(s) available."
    return "False", c.UNAVAILABLE, "No serving replica is available yet."


def _progressing(
    seen: StatusFacts,
    done: bool,
    degraded: tuple[str, str] | None,
    engine_ready: tuple[str, str, str],
    why_not: str,
) -> tuple[str, str, str]:
    stalls = c.POD_REASONS | c.VOLUME_REASONS | {c.APPLY_FAILED}
    if degraded and degraded[0] in stalls:
        return "False", degraded[0], f"The rollout is stalled: {degraded[1]}"
    if done or degraded:
        return "False", c.AS_EXPECTED, "Nothing in progress."
    issue = pod_issue(seen)
    if engine_ready[0] != "True":
        return "True", engine_ready[1], why_not
    if seen.adapters_pending:
        return "True", c.CONVERTING_ADAPTERS, why_not
    return "True", issue[0] if issue else c.ROLLING_OUT, why_not


def _why_not_ready(
    seen: StatusFacts,
    engine_ready: tuple[str, str, str],
    serving_target: bool,
    issue: tuple[str, str] | None,
) -> str:
    if seen.apply_error:
        return seen.apply_error[1]
    if seen.claim_pending:
        return seen.claim_pending[1]
    if engine_ready[0] != "True":
        keep = (
            f" Engine {seen.served_engine} keeps serving meanwhile." if seen.served_engine else ""
        )
        return engine_ready[2] + keep
    if seen.adapters_pending:
        return f"Converting LoRA adapters: {', '.join(seen.adapters_pending)}."
    if issue:
        return issue[1]
    if not serving_target:
        return f"Rolling the Deployment to engine {seen.engine.get('name')}."
    return "Waiting for every replica to be updated and available."


def _degraded(seen: StatusFacts) -> tuple[str, str] | None:
    """(reason, message) of what degrades the deployment: a blocking problem, a failed build,
    failing pods."""
    if seen.problem:
        return seen.problem
    if seen.apply_error:
        return seen.apply_error
    if seen.engine_status.get("phase") == "Failed":
        return c.BUILD_FAILED, _build_failed_message(seen)
    volume = volume_problem(seen) or seen.claim_pending
    if volume:
        return volume
    issue = pod_issue(seen)
    if issue and pods_failing(seen):
        return issue
    return None


def volume_problem(seen: StatusFacts) -> tuple[str, str] | None:
    """(reason, message) when the engine's cache claim is gone, replaced or being deleted."""
    cond = c.find(seen.engine_status.get("conditions"), "CacheVolume") or {}
    if cond.get("status") == "False" and cond.get("reason") in c.VOLUME_REASONS:
        return cond["reason"], cond.get("message", "")
    return None


def _build_failed_message(seen: StatusFacts) -> str:
    engine = seen.engine_status
    error = engine.get("error") or "see the LLMEngine"
    msg = f"Engine {seen.engine.get('name')} failed to build: {error}."
    if seen.served_engine:
        msg += f" The previous engine {seen.served_engine} keeps serving."
    return msg + " Fix the spec (or the cause in the build log) and apply again."


def _phase(seen: StatusFacts, conds: list[dict[str, Any]]) -> str:
    if seen.problem:
        return "Failed" if seen.problem[0] == c.INVALID_SPEC else "Pending"
    if seen.apply_error:
        return "Degraded" if _available_replicas(seen) > 0 or seen.was_serving else "Failed"
    if volume_problem(seen) and c.is_true(conds, "Ready"):
        return "Degraded"  # still serving, from a claim being deleted
    if c.is_true(conds, "Ready"):
        return "Ready"
    if seen.claim_pending:
        return "Pending"
    if seen.engine_status.get("phase") == "Failed":
        return "Degraded" if seen.served_engine else "Failed"
    if pods_failing(seen):
        return "Degraded" if _available_replicas(seen) > 0 or seen.was_serving else "Failed"
    if not c.is_true(conds, "EngineReady"):
        phase = seen.engine_status.get("phase", "Pending")
        return phase if phase in ("Fetching", "Building") else "Pending"
    return "Pending" if pod_issue(seen) else "Deploying"


def carry_autoscaler_fields(
    status: dict[str, Any], old: dict[str, Any], autoscaling: bool
) -> dict[str, Any]:
    """Keep what the autoscaler wrote (status.autoscaling and its condition) while autoscaling is
    on."""
    if not autoscaling:
        return status
    kept = [cond for cond in old.get("conditions") or [] if cond.get("type") == "Autoscaling"]
    out = {**status, "conditions": status["conditions"] + kept}
    if old.get("autoscaling"):
        out["autoscaling"] = old["autoscaling"]
    return out


def status_events(old: dict[str, Any], status: dict[str, Any]) -> list[Event]:
    """The transitions a new status announces: Ready, the engine chosen, new warnings."""
    events = []
    if status["phase"] == "Ready" and old.get("phase") != "Ready":
        events.append(Event("Normal", "Ready", f"Serving {status.get('ready')} replicas"))
    engine, old_engine = status.get("engine") or {}, old.get("engine") or {}
    if engine.get("name") and engine.get("name") != old_engine.get("name"):
        reason = "EngineReused" if engine.get("reused") else "BuildStarted"
        events.append(Event("Normal", reason, f"Engine {engine['name']} on {engine.get('gpu')}"))
    for reason, message in c.new_warnings(old.get("conditions"), status["conditions"]):
        events.append(Event("Warning", reason, message))
    return events
