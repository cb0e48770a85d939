"""Right-sized defaults for the serving container and its /dev/shm (pure).

The serving pod is Burstable by default: a CPU and memory request the scheduler reserves and a
memory limit well above it (loading weights peaks above steady state). A user's
`spec.serving.resources` wins key by key; a Guaranteed pod (requests = limits) stays Guaranteed
because nothing is added to what the user sets. /dev/shm is a memory-backed emptyDir: what it holds
counts against the container's memory, so its sizeLimit is at most half the memory limit (or the
request when there is no limit), and never above SHM_MAX.
"""

from __future__ import annotations

import re
from typing import Any

# 4Gi: what the server process holds in host memory once the weights are on the GPU (tokenizer,
# runtime, request buffers) for the small and medium models a default is for; a large model's user
# raises it in spec.serving.resources. The limit leaves room for the loading peak and /dev/shm.
# 500m CPU: the scheduler keeps that much for tokenization and the HTTP front end, with no CPU
# limit (a surge pod during a roll must fit beside the old one on a small node).
DEFAULT_SERVING_REQUESTS = {"cpu": "500m", "memory": "4Gi"}
DEFAULT_SERVING_MEMORY_LIMIT = "64Gi"
MIB = 1 << 20
SHM_MAX = 16 * 1024 * MIB
SHM_MIN = 64 * MIB
UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
    "Pi": 1 << 50,
    "Ei": 1 << 60,
    "m": 0,  # milli-bytes: only ever a rounding error of a memory quantity
}
QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:([eE][-+]?[0-9]+)|([A-Za-z]*))$")


def quantity_bytes(quantity: str) -> int:
    """A memory quantity (64Gi, 500M, 1e9, 1024) in bytes; ValueError for anything else."""
    match = QUANTITY.match(str(quantity).strip())
    if not match or (match.group(3) or "") not in UNITS:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    number, exponent, unit = match.group(1), match.group(2), match.group(3) or ""
    if exponent:
        return int(float(number + exponent))
    return int(float(number) * UNITS[unit]) if unit != "m" else int(float(number) / 1000)


def serving_resources(user: dict[str, Any]) -> dict[str, Any]:
    """The serving container's requests and limits: the user's, with a CPU request, a memory
    request and a memory limit added where the user set none of that kind (a memory limit only when
    the user set no memory at all: it could fall below their request)."""
    requests = dict(user.get("requests") or {})
    limits = dict(user.get("limits") or {})
    if "cpu" not in requests and "cpu" not in limits:
        requests["cpu"] = DEFAULT_SERVING_REQUESTS["cpu"]
    if "memory" not in requests and "memory" not in limits:
        requests["memory"] = DEFAULT_SERVING_REQUESTS["memory"]
        limits["memory"] = DEFAULT_SERVING_MEMORY_LIMIT
    return {"requests": requests, "limits": limits}


def shm_size_limit(resources: dict[str, Any]) -> str:
    """/dev/shm's sizeLimit inside the container's memory: half the limit (else the request),
    between SHM_MIN and SHM_MAX, in MiB."""
    memory = (resources.get("limits") or {}).get("memory") or (resources.get("requests") or {}).get(
        "memory"
    )
    if memory is None:
        return _mib_text(SHM_MAX)
    half = quantity_bytes(str(memory)) // 2
    return _mib_text(max(SHM_MIN, min(SHM_MAX, half)))


def _mib_text(size: int) -> str:
    """Whole GiB as Gi, else whole MiB as Mi (rounded down)."""
    return f"{size >> 30}Gi" if size % (1 << 30) == 0 else f"{size // MIB}Mi"
