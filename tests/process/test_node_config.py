"""The real node's generated configuration (hack/node.py), checked without starting anything."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hack import node

from tests.factories import H100


def test_containerd_is_private_and_refuses_no_oom_adjustment() -> None:
    config = tomllib.loads(node.containerd_config("localhost/pause:1"))
    assert config["root"].startswith(str(node.NODE)) and config["state"].startswith(str(node.NODE))
    assert config["grpc"]["address"] == str(node.containerd_socket())
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True, "this VM refuses a negative oom_score_adj"
    assert cri["sandbox_image"] == "localhost/pause:1"
    assert cri["cni"]["conf_dir"].startswith(str(node.NODE))


def test_pod_network_is_the_bridge_with_the_node_ip_as_gateway() -> None:
    bridge, portmap = node.cni_config()["plugins"]
    assert bridge["bridge"] == node.BRIDGE and bridge["isGateway"] and bridge["hairpinMode"]
    assert "promiscMode" not in bridge, (
        "the bridge plugin refuses hairpin and promiscuous mode together"
    )
    ranges = bridge["ipam"]["ranges"][0][0]
    assert ranges["gateway"] == node.NODE_IP and ranges["subnet"] == node.POD_SUBNET
    assert portmap["type"] == "portmap"


def test_kubelet_uses_our_runtime_dns_and_taint() -> None:
    config = node.kubelet_config({"kubelet": 1, "kubelet-healthz": 2}, Path("/ca.crt"))
    assert config["cgroupDriver"] == "cgroupfs" and config["failSwapOn"] is False
    assert config["containerRuntimeEndpoint"] == f"unix://{node.containerd_socket()}"
    assert config["clusterDNS"] == [node.NODE_IP]
    assert config["registerWithTaints"] == [
        {"key": node.LABEL, "value": "true", "effect": "NoSchedule"}
    ]
    assert (
        config["authorization"]["mode"] == "Webhook"
        and not config["authentication"]["anonymous"]["enabled"]
    )


def test_namespace_annotations_match_the_taint_and_label() -> None:
    notes = node.namespace_annotations()
    assert notes["scheduler.alpha.kubernetes.io/node-selector"] == f"{node.LABEL}=true"
    assert json.loads(notes["scheduler.alpha.kubernetes.io/defaultTolerations"]) == [
        node.TOLERATION
    ]


def test_node_identity_is_in_the_node_group() -> None:
    line = node.node_token_line("tok")
    assert line.startswith("tok,system:node:real-0,") and line.strip().endswith('"system:nodes"')


def test_a_machine_without_the_real_node_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "state.json").write_text("{}")
    monkeypatch.setattr(
        node, "STATE", tmp_path / "state.json"
    )  # this checkout's node: no other one
    monkeypatch.setenv("TRTLLM_NO_REAL_NODE", "1")
    assert node.unavailable_reason() == "TRTLLM_NO_REAL_NODE is set"
    monkeypatch.delenv("TRTLLM_NO_REAL_NODE")
    monkeypatch.setattr(
        node.shutil, "which", lambda name: None if name == "containerd" else "/bin/x"
    )
    if node.os.geteuid() == 0:
        assert "containerd" in node.unavailable_reason()


def test_a_second_checkout_leaves_the_running_node_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(node, "STATE", tmp_path / "absent.json")
    monkeypatch.setattr(node, "BRIDGE", "lo")  # a device that exists: another checkout's bridge
    if node.os.geteuid() == 0:
        assert "another checkout" in node.unavailable_reason()

    def touched(*_: object, **__: object) -> None:
        raise AssertionError("down() touched a node that is not this checkout's")

    for name in (
        "drain_pods",
        "kill_tasks",
        "kill_strays",
        "unmount_all",
        "remove_network",
        "remove_cgroups",
    ):
        monkeypatch.setattr(node, name, touched)
    node.down(
        "kubectl", "kubeconfig"
    )  # nothing of this checkout's: returns without touching the machine


def test_gpu_labels_are_those_of_a_real_product() -> None:
    assert node.GPU_LABELS["nvidia.com/gpu.product"] == H100
    assert node.GPU_LABELS["nvidia.com/gpu.count"] == str(node.GPUS)
    assert (
        node.GPU_LABELS["nvidia.com/gpu.compute.major"],
        node.GPU_LABELS["nvidia.com/gpu.compute.minor"],
    ) == ("9", "0")
