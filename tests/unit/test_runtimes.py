"""Serving runtimes behind one protocol: the registry matches the API, each runtime's ports, probes,
metrics and endpoints agree, and a new runtime needs no change to the serving plan."""

from __future__ import annotations

import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.golden.serving_samples import SAMPLES, load
from trtllm_operator.api import models
from trtllm_operator.api.models import LLMDeploymentSpec, LLMEngineSpec
from trtllm_operator.api.toolchains import Toolchain, load_toolchains
from trtllm_operator.api.validation import Problem, SpecError, parse_deployment_spec
from trtllm_operator.autoscale.queries import LOAD_TERMS, UnsupportedMetricError, metric_query
from trtllm_operator.plan.consistency import consistency_problems
from trtllm_operator.plan.deployment_status import endpoints
from trtllm_operator.plan.engine import model_dir
from trtllm_operator.plan.runtimes import RUNTIMES, Runtime, runtime_for
from trtllm_operator.plan.runtimes.base import (
    ClientEndpoint,
    MetricsEndpoint,
    PodParts,
    Port,
    Probes,
    ServerPod,
    ServingPaths,
)
from trtllm_operator.plan.runtimes.promql import label_matchers
from trtllm_operator.plan.serving import (
    Served,
    desired_deployment,
    desired_pod_monitor,
    desired_service,
    desired_serving_config,
)

TOOLCHAINS = sorted(load_toolchains().values(), key=lambda tc: tc.name)
METHODS = (
    "image",
    "ports",
    "config_files",
    "server_command",
    "pod_parts",
    "adapter_problems",
    "toolchain_problems",
    "settings_problems",
)


def disagreements(runtime: Runtime, tc: Toolchain) -> list[str]:
    """What in a runtime's declarations points at a port it lacks (empty when consistent)."""
    ports = [p.name for p in runtime.ports(tc)]
    found = [f"duplicate port names {ports}"] if len(set(ports)) != len(ports) else []
    numbers = [p.number for p in runtime.ports(tc)]
    found += [f"duplicate port numbers {numbers}"] if len(set(numbers)) != len(numbers) else []
    found += [f"probe port {runtime.probes.port}"] if runtime.probes.port not in ports else []
    found += [f"metrics port {runtime.metrics.port}"] if runtime.metrics.port not in ports else []
    found += [f"endpoint port {e.port}" for e in runtime.client_endpoints if e.port not in ports]
    return found


def test_the_registry_holds_exactly_the_api_runtimes() -> None:
    assert set(RUNTIMES) == set(typing.get_args(models.Runtime))
    for name, runtime in RUNTIMES.items():
        assert runtime.name == name and runtime_for(name) is runtime


def test_an_unknown_runtime_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="triton, trtllm-serve"):
        runtime_for("vllm")


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_every_runtime_satisfies_the_protocol(name: str) -> None:
    runtime = RUNTIMES[name]
    assert isinstance(runtime, Runtime)
    assert isinstance(runtime.adapter_links, bool)
    assert isinstance(runtime.probes, Probes) and isinstance(runtime.metrics, MetricsEndpoint)
    assert runtime.client_endpoints
    assert all(isinstance(e, ClientEndpoint) for e in runtime.client_endpoints)
    assert all(callable(getattr(runtime, method)) for method in METHODS)
    known = set(typing.get_args(models.ScalingMetric)) | set(LOAD_TERMS)
    assert set(runtime.queries) <= known
    # every runtime reports the terms loadDemand is built from
    assert set(LOAD_TERMS) <= set(runtime.queries)


@pytest.mark.parametrize("tc", TOOLCHAINS, ids=[tc.name for tc in TOOLCHAINS])
@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_probes_metrics_and_endpoints_use_the_runtimes_own_ports(name: str, tc: Toolchain) -> None:
    ports = RUNTIMES[name].ports(tc)
    assert ports and all(isinstance(p, Port) and p.number > 0 for p in ports)
    assert disagreements(RUNTIMES[name], tc) == []


def test_the_agreement_check_catches_a_port_the_runtime_lacks() -> None:
    broken = FakeRuntime(metrics=MetricsEndpoint("prometheus", "/metrics"))
    assert disagreements(broken, TOOLCHAINS[0]) == ["metrics port prometheus"]


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_every_query_selects_the_given_pods(name: str) -> None:
    selector = {"namespace": "llm", "pod": "=~chat-.*"}
    for metric, build in RUNTIMES[name].queries.items():
        query = build(selector, ("pod",))
        assert 'namespace="llm"' in query and 'pod=~"chat-.*"' in query, metric
        assert "by (pod)" in query and metric_query(name, metric, selector, ("pod",)) == query


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_the_rendered_pod_service_and_monitor_agree(path: Path) -> None:
    """On each sample: the server listens on every container port (its command names the number),
    the Service targets exactly those ports, the probes and the PodMonitor use one of them."""
    spec, engine = load(path)
    deployment, service, monitor = rendered(spec, engine)
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert all(any(str(number) in arg for arg in server["command"]) for number in ports.values())
    assert {p["targetPort"]: p["port"] for p in service["spec"]["ports"]} == ports
    assert {server[probe]["httpGet"]["port"] for probe in PROBES} <= set(ports)
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports
    assert {e["name"]: e["port"] for e in endpoints("chat", "ns", spec)}.items() <= ports.items()


PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def rendered(spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> tuple[dict[str, Any], ...]:
    """The Deployment, Service and PodMonitor the serving plan makes for spec and engine."""
    served = Served("chat-engine", "k" * 64, engine, model_dir(engine, {}))
    config = desired_serving_config("chat", "ns", spec, served, [])
    deployment = desired_deployment("chat", "ns", spec, served, "cache", config, 1, [])
    service = desired_service("chat", "ns", spec, [])
    return deployment, service, desired_pod_monitor("chat", "ns", spec, [])


class FakeRuntime:
    """A made-up third runtime, defined only here: nothing in plan/ knows it."""

    name = "fake"
    adapter_links = False
    probes = Probes(port="api", ready="/ready", live="/alive")
    client_endpoints = (ClientEndpoint("api", "fake-rpc"),)
    queries = {"waitingRequests": lambda sel, by: f"sum(fake_waiting{label_matchers(sel)})"}

    def __init__(self, metrics: MetricsEndpoint | None = None) -> None:
        self.metrics = metrics or MetricsEndpoint("api", "/stats")

    def image(self, tc: Toolchain) -> str:
        return f"{tc.images.release}-fake"

    def ports(self, tc: Toolchain) -> tuple[Port, ...]:
        return (Port("api", 9100),)

    def config_files(
        self, spec: LLMDeploymentSpec, engine: LLMEngineSpec, paths: ServingPaths
    ) -> dict[str, str]:
        return {"fake.conf": f"model={paths.tokenizer_dir}\n"}

    def server_command(self, pod: ServerPod) -> list[str]:
        return ["fake-server", "--model", pod.model_dir, "--port", "9100"]

    def pod_parts(self, pod: ServerPod) -> PodParts:
        warm = {"name": "warm-up", "image": pod.image, "command": ["fake-warm", pod.engine_name]}
        return PodParts(
            init_containers=(warm,),
            volumes=({"name": "scratch", "emptyDir": {}},),
            mounts=({"name": "scratch", "mountPath": "/scratch"},),
        )

    def adapter_problems(self, spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
        return []

    def toolchain_problems(self, engine: LLMEngineSpec, tc: Toolchain) -> list[Problem]:
        return []

    def settings_problems(self, spec: LLMDeploymentSpec, engine: LLMEngineSpec) -> list[Problem]:
        return [("spec.serving", "fake checks ran")]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRuntime]:
    """FakeRuntime registered for the test's duration."""
    runtime = FakeRuntime()
    monkeypatch.setitem(RUNTIMES, runtime.name, runtime)
    yield runtime


def fake_spec() -> tuple[LLMDeploymentSpec, LLMEngineSpec]:
    """A valid trtllm-serve spec switched to runtime "fake" (the API's Literal does not know it)."""
    spec, engine = next(load(p) for p in SAMPLES if load(p)[0].serving.runtime == "trtllm-serve")
    serving = spec.serving.model_copy(update={"runtime": "fake"})
    return spec.model_copy(update={"serving": serving}), engine


def test_a_new_runtime_flows_through_the_serving_plan(fake: FakeRuntime) -> None:
    assert isinstance(fake, Runtime) and disagreements(fake, TOOLCHAINS[0]) == []
    spec, engine = fake_spec()
    deployment, service, monitor = rendered(spec, engine)
    pod = deployment["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["command"] == ["fake-server", "--model", model_dir(engine, {}), "--port", "9100"]
    assert server["image"].endswith("-fake")
    assert pod["initContainers"][0]["image"] == server["image"]
    assert server["ports"] == [{"name": "api", "containerPort": 9100, "protocol": "TCP"}]
    assert [server[p]["httpGet"]["path"] for p in PROBES] == ["/ready", "/ready", "/alive"]
    assert {"name": "scratch", "mountPath": "/scratch"} in server["volumeMounts"]
    assert {"name": "scratch", "emptyDir": {}} in pod["volumes"]
    assert [c["command"] for c in pod["initContainers"]] == [["fake-warm", "chat-engine"]]
    api = {"name": "api", "port": 9100, "targetPort": "api", "protocol": "TCP"}
    assert service["spec"]["ports"] == [api]
    scrape = {"port": "api", "path": "/stats", "interval": "15s"}
    assert monitor["spec"]["podMetricsEndpoints"] == [scrape]


def test_a_new_runtime_flows_through_config_status_checks_and_queries(fake: FakeRuntime) -> None:
    spec, engine = fake_spec()
    served = Served("chat-engine", "k" * 64, engine, model_dir(engine, {}))
    config = desired_serving_config("chat", "ns", spec, served, [])
    assert config["data"] == {"fake.conf": f"model={model_dir(engine, {})}\n"}
    assert endpoints("chat", "ns", spec) == [
        {"name": "api", "host": "chat.ns.svc", "port": 9100, "protocol": "fake-rpc"}
    ]
    assert consistency_problems(spec, engine)[-1] == ("spec.serving", "fake checks ran")
    selector: Mapping[str, str] = {"namespace": "llm"}
    assert metric_query("fake", "waitingRequests", selector) == 'sum(fake_waiting{namespace="llm"})'
    with pytest.raises(UnsupportedMetricError, match="fake"):
        metric_query("fake", "kvCacheDemand", selector)


def test_the_api_still_rejects_a_runtime_only_the_registry_knows(fake: FakeRuntime) -> None:
    """Registering is the plan's half; the API's Runtime Literal (and so the CRD) is the other."""
    path = next(p for p in SAMPLES if load(p)[0].serving.runtime == "trtllm-serve")
    body = yaml.safe_load(path.read_text())["spec"]
    body["serving"]["runtime"] = "fake"
    with pytest.raises(SpecError, match="runtime"):
        parse_deployment_spec(body)
