"""A kubelet device plugin that advertises pretend NVIDIA GPUs (kubelet device plugin API v1beta1).

The kubelet counts `nvidia.com/gpu` (or any --resource) on the node from the devices we list, so GPU
pods are admitted and accounted for on a node without GPUs. Allocate only sets
NVIDIA_VISIBLE_DEVICES (what NVIDIA's k8s-device-plugin sets); no device files or mounts.

The messages and services are defined here, without generated code. Package, service, method and
field names and field numbers were read from `pkg/apis/deviceplugin/v1beta1/api.proto` of the Go
module `k8s.io/kubelet@v0.34.4` (Kubernetes v1.34.4, the kubelet the local cluster builds; sha256
b780bfeac99c93c2...), checked field by field against kubernetes/kubernetes
`staging/src/k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1/api.proto` at commit 0619cbbff1ff.

    python -m hack.gpu_plugin --kubelet-dir <kubelet-root>/device-plugins \
        --resource nvidia.com/gpu --count 8 [--uuid-prefix GPU-real-0]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

LOG = logging.getLogger("gpu_plugin")

PACKAGE = "v1beta1"
API_VERSION = "v1beta1"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
KUBELET_SOCKET = "kubelet.sock"
PLUGIN_SOCKET = "trtllm-fake-gpu.sock"
VISIBLE_DEVICES_ENV = "NVIDIA_VISIBLE_DEVICES"
REGISTER_RETRY_SECONDS = 2.0
WAIT_LOG_SECONDS = 10.0

# Each field: (name, number, kind); kind is a scalar, a message name, "repeated <kind>" or "map"
# (map<string, string>). Names and numbers exactly as in api.proto.
MESSAGES: dict[str, tuple[tuple[str, int, str], ...]] = {
    "DevicePluginOptions": (
        ("pre_start_required", 1, "bool"),
        ("get_preferred_allocation_available", 2, "bool"),
    ),
    "RegisterRequest": (
        ("version", 1, "string"),
        ("endpoint", 2, "string"),
        ("resource_name", 3, "string"),
        ("options", 4, "DevicePluginOptions"),
    ),
    "Empty": (),
    "ListAndWatchResponse": (("devices", 1, "repeated Device"),),
    "TopologyInfo": (("nodes", 1, "repeated NUMANode"),),
    "NUMANode": (("ID", 1, "int64"),),
    "Device": (("ID", 1, "string"), ("health", 2, "string"), ("topology", 3, "TopologyInfo")),
    "PreStartContainerRequest": (("devices_ids", 1, "repeated string"),),
    "PreStartContainerResponse": (),
    "PreferredAllocationRequest": (
        ("container_requests", 1, "repeated ContainerPreferredAllocationRequest"),
    ),
    "ContainerPreferredAllocationRequest": (
        ("available_deviceIDs", 1, "repeated string"),
        ("must_include_deviceIDs", 2, "repeated string"),
        ("allocation_size", 3, "int32"),
    ),
    "PreferredAllocationResponse": (
        ("container_responses", 1, "repeated ContainerPreferredAllocationResponse"),
    ),
    "ContainerPreferredAllocationResponse": (("deviceIDs", 1, "repeated string"),),
    "AllocateRequest": (("container_requests", 1, "repeated ContainerAllocateRequest"),),
    "ContainerAllocateRequest": (("devices_ids", 1, "repeated string"),),
    "CDIDevice": (("name", 1, "string"),),
    "AllocateResponse": (("container_responses", 1, "repeated ContainerAllocateResponse"),),
    "ContainerAllocateResponse": (
        ("envs", 1, "map"),
        ("mounts", 2, "repeated Mount"),
        ("devices", 3, "repeated DeviceSpec"),
        ("annotations", 4, "map"),
        ("cdi_devices", 5, "repeated CDIDevice"),
    ),
    "Mount": (
        ("container_path", 1, "string"),
        ("host_path", 2, "string"),
        ("read_only", 3, "bool"),
    ),
    "DeviceSpec": (
        ("container_path", 1, "string"),
        ("host_path", 2, "string"),
        ("permissions", 3, "string"),
    ),
}

# service -> method -> (request message, response message, server streams)
SERVICES: dict[str, dict[str, tuple[str, str, bool]]] = {
    "Registration": {"Register": ("RegisterRequest", "Empty", False)},
    "DevicePlugin": {
        "GetDevicePluginOptions": ("Empty", "DevicePluginOptions", False),
        "ListAndWatch": ("Empty", "ListAndWatchResponse", True),
        "GetPreferredAllocation": (
            "PreferredAllocationRequest",
            "PreferredAllocationResponse",
            False,
        ),
        "Allocate": ("AllocateRequest", "AllocateResponse", False),
        "PreStartContainer": ("PreStartContainerRequest", "PreStartContainerResponse", False),
    },
}

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _FDP.TYPE_STRING,
    "bool": _FDP.TYPE_BOOL,
    "int32": _FDP.TYPE_INT32,
    "int64": _FDP.TYPE_INT64,
}


def _field(name: str, number: int, kind: str, scope: str) -> descriptor_pb2.FieldDescriptorProto:
    """One field's descriptor; message types are looked up in the package, maps in `scope`."""
    repeated = kind.startswith("repeated ") or kind == "map"
    kind = kind.removeprefix("repeated ")
    field = _FDP(name=name, number=number)
    field.label = _FDP.LABEL_REPEATED if repeated else _FDP.LABEL_OPTIONAL
    if kind in _SCALARS:
        field.type = _SCALARS[kind]
        return field
    field.type = _FDP.TYPE_MESSAGE
    if kind == "map":
        field.type_name = f".{PACKAGE}.{scope}.{_map_entry_name(name)}"
    else:
        field.type_name = f".{PACKAGE}.{kind}"
    return field


def _map_entry_name(field_name: str) -> str:
    """The nested entry type protoc generates for a map field (`envs` -> `EnvsEntry`)."""
    return "".join(part.title() for part in field_name.split("_")) + "Entry"


def _message(name: str, fields: tuple[tuple[str, int, str], ...]) -> descriptor_pb2.DescriptorProto:
    """A message descriptor, with a string->string entry type for each map field."""
    message = descriptor_pb2.DescriptorProto(name=name)
    for field_name, number, kind in fields:
        message.field.append(_field(field_name, number, kind, name))
        if kind == "map":
            entry = message.nested_type.add(name=_map_entry_name(field_name))
            entry.options.map_entry = True
            entry.field.append(_field("key", 1, "string", name))
            entry.field.append(_field("value", 2, "string", name))
    return message


def build_file() -> descriptor_pb2.FileDescriptorProto:
    """The v1beta1 device-plugin API as a FileDescriptorProto, from MESSAGES and SERVICES."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="trtllm_fake_gpu/deviceplugin_v1beta1.proto", package=PACKAGE, syntax="proto3"
    )
    proto.message_type.extend(_message(name, fields) for name, fields in MESSAGES.items())
    for service, methods in SERVICES.items():
        described = proto.service.add(name=service)
        for method, (request, response, streams) in methods.items():
            described.method.add(
                name=method,
                input_type=f".{PACKAGE}.{request}",
                output_type=f".{PACKAGE}.{response}",
                server_streaming=streams,
            )
    return proto


def _load_classes() -> dict[str, type[Message]]:
    """Message classes for every message, from a pool of our own (never the global one)."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(build_file())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in MESSAGES
    }


CLASSES = _load_classes()


def new(message: str, /, **fields: Any) -> Message:
    """A v1beta1 message by name (`new("Device", ID="GPU-0", health="Healthy")`)."""
    return CLASSES[message](**fields)


def method_path(service: str, method: str) -> str:
    """The gRPC path the kubelet calls, e.g. `/v1beta1.DevicePlugin/Allocate`."""
    return f"/{PACKAGE}.{service}/{method}"


def _snake(method: str) -> str:
    """The Python method name serving an RPC (`ListAndWatch` -> `list_and_watch`)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", method).lower()


def service_handler(service: str, impl: object) -> grpc.GenericRpcHandler:
    """A gRPC handler serving `service` with impl's snake_case methods (`impl.list_and_watch`)."""
    handlers = {}
    for method, (request, response, streams) in SERVICES[service].items():
        make = grpc.unary_unary_rpc_method_handler
        if streams:
            make = grpc.unary_stream_rpc_method_handler
        handlers[method] = make(
            getattr(impl, _snake(method)),
            request_deserializer=CLASSES[request].FromString,
            response_serializer=CLASSES[response].SerializeToString,
        )
    return grpc.method_handlers_generic_handler(f"{PACKAGE}.{service}", handlers)


def stub(channel: grpc.Channel, service: str, method: str) -> Callable[..., Any]:
    """A callable for one RPC on `channel` (streaming RPCs return an iterator of responses)."""
    request, response, streams = SERVICES[service][method]
    make = channel.unary_stream if streams else channel.unary_unary
    return make(
        method_path(service, method),
        request_serializer=CLASSES[request].SerializeToString,
        response_deserializer=CLASSES[response].FromString,
    )


def unix_channel(path: Path) -> grpc.Channel:
    """An insecure channel to a unix socket (never through an HTTP proxy)."""
    target = f"unix://{path.absolute()}"
    return grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])


def device_ids(prefix: str, count: int) -> list[str]:
    """Stable NVIDIA-UUID-like IDs `GPU-<prefix>-<i>`; a prefix already starting `GPU-` is kept."""
    prefix = prefix if prefix.startswith("GPU-") else f"GPU-{prefix}"
    ids = [f"{prefix}-{index}" for index in range(count)]
    if any(len(device) > 63 for device in ids):
        raise ValueError(f"Device IDs may be 63 characters at most: {ids[-1]!r}")
    return ids


def preferred_devices(
    order: list[str], available: list[str], must_include: list[str], size: int
) -> list[str]:
    """must_include first, then the first available devices in our device order, `size` in all."""
    rank = {device: index for index, device in enumerate(order)}
    chosen = list(dict.fromkeys(must_include))
    rest = sorted(
        (device for device in dict.fromkeys(available) if device not in chosen),
        key=lambda device: (rank.get(device, len(rank)), device),
    )
    return chosen + rest[: max(size - len(chosen), 0)]


def registration_request(resource: str) -> Message:
    """What we tell the kubelet: our API version, socket name, resource and options."""
    return new(
        "RegisterRequest",
        version=API_VERSION,
        endpoint=PLUGIN_SOCKET,
        resource_name=resource,
        options=plugin_options(),
    )


def plugin_options() -> Message:
    """No PreStartContainer calls; GetPreferredAllocation is available."""
    return new(
        "DevicePluginOptions", pre_start_required=False, get_preferred_allocation_available=True
    )


class FakeGpus:
    """The DevicePlugin service: a fixed set of devices that exist only in the list we send."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = list(ids)
        self._health = dict.fromkeys(self.ids, HEALTHY)
        self._changed = threading.Condition()
        self._generation = 0
        self._closed = False

    def set_health(self, device: str, health: str) -> None:
        """Change one device's health; every open ListAndWatch stream sends the new list."""
        with self._changed:
            self._health[device] = health
            self._generation += 1
            self._changed.notify_all()

    def close(self) -> None:
        """End every open ListAndWatch stream (on shutdown)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def get_device_plugin_options(self, request: Message, context: grpc.ServicerContext) -> Message:
        """The same options we register with."""
        return plugin_options()

    def list_and_watch(self, request: Message, context: grpc.ServicerContext) -> Iterator[Message]:
        """The device list at once, then again only after a change, until the stream ends."""
        sent = -1
        while context.is_active():
            with self._changed:
                self._changed.wait_for(lambda seen=sent: self._news(seen), timeout=1.0)
                if self._closed:
                    return
                if self._generation == sent:
                    continue
                sent = self._generation
                devices = [new("Device", ID=device, health=h) for device, h in self._health.items()]
            LOG.info(
                "Sent the device list: %d devices, %d healthy",
                len(devices),
                sum(device.health == HEALTHY for device in devices),
            )
            yield new("ListAndWatchResponse", devices=devices)

    def _news(self, seen: int) -> bool:
        """True when the list changed since generation `seen`, or we are closing."""
        return self._generation != seen or self._closed

    def get_preferred_allocation(self, request: Message, context: grpc.ServicerContext) -> Message:
        """For each container, must_include plus the first available devices."""
        responses = []
        for asked in request.container_requests:
            chosen = preferred_devices(
                self.ids,
                list(asked.available_deviceIDs),
                list(asked.must_include_deviceIDs),
                asked.allocation_size,
            )
            LOG.info("Preferred %s for a request of %d", ",".join(chosen), asked.allocation_size)
            responses.append(new("ContainerPreferredAllocationResponse", deviceIDs=chosen))
        return new("PreferredAllocationResponse", container_responses=responses)

    def allocate(self, request: Message, context: grpc.ServicerContext) -> Message:
        """NVIDIA_VISIBLE_DEVICES per container; unknown IDs fail with INVALID_ARGUMENT."""
        responses = []
        for asked in request.container_requests:
            ids = list(asked.devices_ids)
            LOG.info("Allocation asked: %s", ",".join(ids))
            unknown = [device for device in ids if device not in self._health]
            if unknown:
                LOG.info("Refused allocation of unknown devices %s", ",".join(unknown))
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown device IDs: {unknown}")
            envs = {VISIBLE_DEVICES_ENV: ",".join(ids)}
            responses.append(new("ContainerAllocateResponse", envs=envs))
            LOG.info("Allocated %s=%s", VISIBLE_DEVICES_ENV, ",".join(ids))
        return new("AllocateResponse", container_responses=responses)

    def pre_start_container(self, request: Message, context: grpc.ServicerContext) -> Message:
        """Nothing to prepare on devices that do not exist."""
        return new("PreStartContainerResponse")


def socket_identity(path: Path) -> tuple[int, int, int] | None:
    """(device, inode, ctime) of a socket, or None when absent: it changes when recreated."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_ctime_ns)


class PluginServer:
    """Serves FakeGpus on our socket and keeps it registered with whichever kubelet is running."""

    def __init__(self, kubelet_dir: Path, resource: str, gpus: FakeGpus, poll: float = 0.5) -> None:
        self.socket = Path(kubelet_dir).absolute() / PLUGIN_SOCKET
        self.kubelet_socket = Path(kubelet_dir).absolute() / KUBELET_SOCKET
        self.resource = resource
        self.gpus = gpus
        self.poll = poll
        self._server: grpc.Server | None = None
        self._registered_with: tuple[int, int, int] | None = None
        self._next_register = 0.0
        self._next_wait_log = 0.0

    def run(self, stop: threading.Event) -> None:
        """Serve, register and watch for kubelet restarts until `stop` is set; then clean up."""
        try:
            while True:
                self.tick()
                if stop.wait(self.poll):
                    return
        finally:
            self.shutdown()

    def tick(self) -> None:
        """One look: serve again if our socket is gone, register if the kubelet is new to us."""
        if not self.socket.exists():
            if self._server is not None:
                LOG.info("Saw %s deleted (the kubelet restarted); serving again", self.socket.name)
            self.serve()
            self._registered_with = None
        kubelet = socket_identity(self.kubelet_socket)
        if kubelet is None:
            self._wait_for_kubelet()
            return
        if kubelet == self._registered_with or time.monotonic() < self._next_register:
            return
        if self._registered_with is not None:
            LOG.info("Saw %s recreated (the kubelet restarted)", self.kubelet_socket)
        self.register(kubelet)

    def _wait_for_kubelet(self) -> None:
        """Log (every WAIT_LOG_SECONDS) that we wait for kubelet.sock."""
        if self._registered_with is not None:
            LOG.info("Saw %s deleted (the kubelet stopped)", self.kubelet_socket)
            self._registered_with = None
        if time.monotonic() >= self._next_wait_log:
            LOG.info("Waiting for %s", self.kubelet_socket)
            self._next_wait_log = time.monotonic() + WAIT_LOG_SECONDS

    def serve(self) -> None:
        """(Re)start the DevicePlugin server on our socket, removing a stale socket first."""
        self._stop_server()
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        server = grpc.server(ThreadPoolExecutor(max_workers=8, thread_name_prefix="gpu-plugin"))
        server.add_generic_rpc_handlers((service_handler("DevicePlugin", self.gpus),))
        server.add_insecure_port(f"unix://{self.socket}")
        server.start()
        self._server = server
        LOG.info("Served DevicePlugin (%d devices) on %s", len(self.gpus.ids), self.socket)

    def register(self, kubelet: tuple[int, int, int]) -> bool:
        """Call Registration.Register; on failure retry after REGISTER_RETRY_SECONDS."""
        try:
            with unix_channel(self.kubelet_socket) as channel:
                register = stub(channel, "Registration", "Register")
                register(registration_request(self.resource), timeout=5)
        except grpc.RpcError as error:
            LOG.info(
                "Registration with %s failed (%s: %s); retrying in %.0f s",
                self.kubelet_socket,
                error.code().name,
                error.details(),
                REGISTER_RETRY_SECONDS,
            )
            self._next_register = time.monotonic() + REGISTER_RETRY_SECONDS
            return False
        self._registered_with = kubelet
        LOG.info(
            "Registered %s (%d devices, endpoint %s) with the kubelet at %s",
            self.resource,
            len(self.gpus.ids),
            PLUGIN_SOCKET,
            self.kubelet_socket,
        )
        return True

    def _stop_server(self) -> None:
        """Stop the running server, ending its streams."""
        if self._server is not None:
            self._server.stop(grace=0).wait()
            self._server = None

    def shutdown(self) -> None:
        """Stop serving and remove our socket."""
        self.gpus.close()
        self._stop_server()
        self.socket.unlink(missing_ok=True)
        LOG.info("Stopped; removed %s", self.socket)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Advertise fake NVIDIA GPUs to a kubelet.")
    parser.add_argument(
        "--kubelet-dir",
        required=True,
        type=Path,
        help="the kubelet's device-plugins directory (<root-dir>/device-plugins)",
    )
    parser.add_argument("--resource", default="nvidia.com/gpu", help="extended resource name")
    parser.add_argument("--count", type=int, default=8, help="how many devices to advertise")
    parser.add_argument("--uuid-prefix", default="GPU-fake", help="device IDs are <prefix>-<i>")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run in the foreground until SIGTERM or SIGINT; returns the exit status (0)."""
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s gpu-plugin %(message)s"
    )
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    gpus = FakeGpus(device_ids(args.uuid_prefix, args.count))
    PluginServer(args.kubelet_dir, args.resource, gpus).run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
