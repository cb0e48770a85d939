"""hack/gpu_plugin.py against a fake kubelet of our own, over real unix-socket gRPC in a tmp dir."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from hack import gpu_plugin

from tests.kube import ROOT

RESOURCE = "nvidia.com/gpu"
IDS = ["GPU-real-0-0", "GPU-real-0-1", "GPU-real-0-2", "GPU-real-0-3"]
WAIT = 20.0


class FakeKubelet:
    """The kubelet's Registration service on kubelet.sock; records every RegisterRequest."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / gpu_plugin.KUBELET_SOCKET
        self.requests: queue.Queue = queue.Queue()
        self._server: grpc.Server | None = None

    def register(self, request, context):
        """Record the request and accept it."""
        self.requests.put(request)
        return gpu_plugin.new("Empty")

    def start(self) -> None:
        """Listen on kubelet.sock (a new inode each time)."""
        self._server = grpc.server(ThreadPoolExecutor(max_workers=2))
        self._server.add_generic_rpc_handlers((gpu_plugin.service_handler("Registration", self),))
        self._server.add_insecure_port(f"unix://{self.socket}")
        self._server.start()

    def stop(self) -> None:
        """Stop listening and delete kubelet.sock, as a stopping kubelet leaves it gone."""
        if self._server is not None:
            self._server.stop(grace=0).wait()
        self.socket.unlink(missing_ok=True)

    def next_request(self):
        """The next RegisterRequest, waiting for it."""
        return self.requests.get(timeout=WAIT)


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[FakeKubelet]:
    fake = FakeKubelet(tmp_path)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def plugin(tmp_path: Path, kubelet: FakeKubelet) -> Iterator[gpu_plugin.PluginServer]:
    """The plugin running in a thread, registered once with the fake kubelet."""
    server = gpu_plugin.PluginServer(tmp_path, RESOURCE, gpu_plugin.FakeGpus(IDS), poll=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,), daemon=True)
    thread.start()
    kubelet.next_request()
    yield server
    stop.set()
    thread.join(timeout=WAIT)
    assert not thread.is_alive()


def call(server: gpu_plugin.PluginServer, method: str, request, **kwargs):
    """Call one DevicePlugin RPC on the plugin's socket."""
    with gpu_plugin.unix_channel(server.socket) as channel:
        result = gpu_plugin.stub(channel, "DevicePlugin", method)(request, **kwargs)
        return list(result) if method == "ListAndWatch" else result


def watch(channel: grpc.Channel, timeout: float) -> Iterator:
    """A ListAndWatch stream that ends with DEADLINE_EXCEEDED after `timeout` seconds."""
    return gpu_plugin.stub(channel, "DevicePlugin", "ListAndWatch")(
        gpu_plugin.new("Empty"), timeout=timeout
    )


def allocate_request(*containers: list[str]):
    asked = [gpu_plugin.new("ContainerAllocateRequest", devices_ids=ids) for ids in containers]
    return gpu_plugin.new("AllocateRequest", container_requests=asked)


def test_registers_with_version_endpoint_resource_and_options(
    tmp_path: Path, kubelet: FakeKubelet
) -> None:
    server = gpu_plugin.PluginServer(tmp_path, RESOURCE, gpu_plugin.FakeGpus(IDS), poll=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,), daemon=True)
    thread.start()
    try:
        request = kubelet.next_request()
        assert (tmp_path / "trtllm-fake-gpu.sock").is_socket()
    finally:
        stop.set()
        thread.join(timeout=WAIT)
    assert request.version == "v1beta1"
    assert request.endpoint == "trtllm-fake-gpu.sock"
    assert request.resource_name == "nvidia.com/gpu"
    assert request.HasField("options")
    assert request.options.get_preferred_allocation_available is True
    assert request.options.pre_start_required is False
    assert not (tmp_path / "trtllm-fake-gpu.sock").exists()


def test_list_and_watch_sends_every_device_healthy_then_only_changes(
    plugin: gpu_plugin.PluginServer,
) -> None:
    with gpu_plugin.unix_channel(plugin.socket) as channel:
        stream = watch(channel, timeout=3)
        first = next(stream)
        assert [device.ID for device in first.devices] == IDS
        assert {device.health for device in first.devices} == {"Healthy"}
        unhealthy = (IDS[2], gpu_plugin.UNHEALTHY)
        threading.Timer(1.0, plugin.gpus.set_health, args=unhealthy).start()
        started = time.monotonic()
        second = next(stream)
        assert time.monotonic() - started >= 0.9, "a second list was sent without any change"
        healths = [device.health for device in second.devices]
        assert healths == ["Healthy", "Healthy", "Unhealthy", "Healthy"]
        with pytest.raises(grpc.RpcError) as raised:
            next(stream)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, "the stream should stay open"


def test_allocate_sets_nvidia_visible_devices_per_container(
    plugin: gpu_plugin.PluginServer,
) -> None:
    response = call(plugin, "Allocate", allocate_request([IDS[1], IDS[3]], [IDS[0]]))
    envs = [dict(container.envs) for container in response.container_responses]
    assert envs == [
        {"NVIDIA_VISIBLE_DEVICES": "GPU-real-0-1,GPU-real-0-3"},
        {"NVIDIA_VISIBLE_DEVICES": "GPU-real-0-0"},
    ]
    for container in response.container_responses:
        assert not container.devices and not container.mounts and not container.cdi_devices


def test_allocate_of_an_unknown_id_is_invalid_argument(
    plugin: gpu_plugin.PluginServer,
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        call(plugin, "Allocate", allocate_request([IDS[0], "GPU-nope-9"]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "GPU-nope-9" in raised.value.details()


def test_options_preferred_allocation_and_pre_start(plugin: gpu_plugin.PluginServer) -> None:
    options = call(plugin, "GetDevicePluginOptions", gpu_plugin.new("Empty"))
    assert options.get_preferred_allocation_available and not options.pre_start_required
    asked = gpu_plugin.new(
        "ContainerPreferredAllocationRequest",
        available_deviceIDs=[IDS[3], IDS[1], IDS[2], IDS[0]],
        must_include_deviceIDs=[IDS[2]],
        allocation_size=2,
    )
    request = gpu_plugin.new("PreferredAllocationRequest", container_requests=[asked])
    response = call(plugin, "GetPreferredAllocation", request)
    assert [list(c.deviceIDs) for c in response.container_responses] == [[IDS[2], IDS[0]]]
    pre_start = gpu_plugin.new("PreStartContainerRequest", devices_ids=[IDS[0]])
    assert call(plugin, "PreStartContainer", pre_start).ListFields() == []


def test_preferred_devices_picks_first_in_device_order() -> None:
    assert gpu_plugin.preferred_devices(IDS, [IDS[3], IDS[1], IDS[0]], [], 2) == [IDS[0], IDS[1]]
    assert gpu_plugin.preferred_devices(IDS, IDS, [IDS[3], IDS[1]], 3) == [IDS[3], IDS[1], IDS[0]]


def test_device_ids_are_stable_nvidia_style() -> None:
    assert gpu_plugin.device_ids("GPU-real-0", 2) == ["GPU-real-0-0", "GPU-real-0-1"]
    assert gpu_plugin.device_ids("real-0", 1) == ["GPU-real-0-0"]
    with pytest.raises(ValueError):
        gpu_plugin.device_ids("x" * 70, 1)


def test_waits_for_kubelet_sock_then_registers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="gpu_plugin")
    server = gpu_plugin.PluginServer(tmp_path, RESOURCE, gpu_plugin.FakeGpus(IDS), poll=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,), daemon=True)
    thread.start()
    late = FakeKubelet(tmp_path)
    try:
        time.sleep(0.5)
        assert "Waiting for" in caplog.text and "kubelet.sock" in caplog.text
        assert "Registered" not in caplog.text
        late.start()
        assert late.next_request().resource_name == RESOURCE
    finally:
        stop.set()
        thread.join(timeout=WAIT)
        late.stop()
    assert "Registered nvidia.com/gpu (4 devices" in caplog.text


def test_registers_again_when_kubelet_sock_is_recreated(
    plugin: gpu_plugin.PluginServer, kubelet: FakeKubelet
) -> None:
    kubelet.stop()
    time.sleep(0.3)
    kubelet.start()
    assert kubelet.next_request().endpoint == "trtllm-fake-gpu.sock"


def test_serves_and_registers_again_when_the_kubelet_deletes_our_socket(
    plugin: gpu_plugin.PluginServer, kubelet: FakeKubelet
) -> None:
    plugin.socket.unlink()
    assert kubelet.next_request().resource_name == RESOURCE
    assert plugin.socket.is_socket()
    with gpu_plugin.unix_channel(plugin.socket) as channel:
        assert len(next(watch(channel, timeout=3)).devices) == len(IDS)


def test_cli_registers_then_sigterm_removes_the_socket(
    tmp_path: Path, kubelet: FakeKubelet
) -> None:
    command = [
        sys.executable,
        str(ROOT / "hack" / "gpu_plugin.py"),
        "--kubelet-dir",
        str(tmp_path),
        "--resource",
        RESOURCE,
        "--count",
        "8",
        "--uuid-prefix",
        "GPU-real-0",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        request = kubelet.next_request()
        assert request.resource_name == RESOURCE
        assert (tmp_path / "trtllm-fake-gpu.sock").is_socket()
        with gpu_plugin.unix_channel(tmp_path / "trtllm-fake-gpu.sock") as channel:
            devices = next(watch(channel, timeout=5)).devices
            assert [d.ID for d in devices] == [f"GPU-real-0-{i}" for i in range(8)]
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=WAIT)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert not (tmp_path / "trtllm-fake-gpu.sock").exists()
    assert "Registered nvidia.com/gpu (8 devices" in output


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """A protobuf varint at `pos`: (value, position after it)."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def wire_fields(data: bytes) -> dict[int, list[int | bytes]]:
    """Field number -> values, read from the raw wire format (varints and length-delimited only)."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = read_varint(data, pos)
        elif wire_type == 2:
            length, pos = read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        else:
            raise AssertionError(f"unexpected wire type {wire_type} for field {number}")
        fields.setdefault(number, []).append(value)
    return fields


def test_field_numbers_on_the_wire_match_api_proto() -> None:
    """Numbers from k8s.io/kubelet@v0.34.4 pkg/apis/deviceplugin/v1beta1/api.proto."""
    options = gpu_plugin.new(
        "DevicePluginOptions", pre_start_required=True, get_preferred_allocation_available=True
    )
    request = gpu_plugin.new(
        "RegisterRequest",
        version="v1beta1",
        endpoint="e.sock",
        resource_name="r/x",
        options=options,
    )
    fields = wire_fields(request.SerializeToString())
    assert fields == {
        1: [b"v1beta1"],
        2: [b"e.sock"],
        3: [b"r/x"],
        4: [options.SerializeToString()],
    }
    assert wire_fields(fields[4][0]) == {1: [1], 2: [1]}

    numa = gpu_plugin.new("TopologyInfo", nodes=[gpu_plugin.new("NUMANode", ID=3)])
    device = gpu_plugin.new("Device", ID="GPU-a", health="Healthy", topology=numa)
    assert wire_fields(device.SerializeToString()) == {
        1: [b"GPU-a"],
        2: [b"Healthy"],
        3: [numa.SerializeToString()],
    }
    assert wire_fields(wire_fields(numa.SerializeToString())[1][0]) == {1: [3]}

    response = gpu_plugin.new(
        "ContainerAllocateResponse",
        envs={"K": "V"},
        mounts=[gpu_plugin.new("Mount", container_path="/c", host_path="/h", read_only=True)],
        devices=[
            gpu_plugin.new("DeviceSpec", container_path="/dc", host_path="/dh", permissions="rw")
        ],
        annotations={"A": "B"},
        cdi_devices=[gpu_plugin.new("CDIDevice", name="nvidia.com/gpu=0")],
    )
    fields = wire_fields(response.SerializeToString())
    assert sorted(fields) == [1, 2, 3, 4, 5]
    assert wire_fields(fields[1][0]) == {1: [b"K"], 2: [b"V"]}
    assert wire_fields(fields[2][0]) == {1: [b"/c"], 2: [b"/h"], 3: [1]}
    assert wire_fields(fields[3][0]) == {1: [b"/dc"], 2: [b"/dh"], 3: [b"rw"]}
    assert wire_fields(fields[4][0]) == {1: [b"A"], 2: [b"B"]}
    assert wire_fields(fields[5][0]) == {1: [b"nvidia.com/gpu=0"]}

    asked = gpu_plugin.new(
        "ContainerPreferredAllocationRequest",
        available_deviceIDs=["a"],
        must_include_deviceIDs=["b"],
        allocation_size=2,
    )
    assert wire_fields(asked.SerializeToString()) == {1: [b"a"], 2: [b"b"], 3: [2]}


def test_service_and_method_paths_match_api_proto() -> None:
    assert gpu_plugin.method_path("Registration", "Register") == "/v1beta1.Registration/Register"
    assert sorted(gpu_plugin.SERVICES["DevicePlugin"]) == [
        "Allocate",
        "GetDevicePluginOptions",
        "GetPreferredAllocation",
        "ListAndWatch",
        "PreStartContainer",
    ]
    assert gpu_plugin.SERVICES["DevicePlugin"]["ListAndWatch"][2] is True
