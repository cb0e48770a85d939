"""Toolchain profiles: which NVIDIA images, TensorRT-LLM version, capabilities and script paths to
use."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DATA_FILE = "toolchains.yaml"


class _Data(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ToolchainImages(_Data):
    """Container images of one toolchain; None where the line has no such image."""

    triton: str | None = Field(description="Triton server image with the TensorRT-LLM backend.")
    release: str = Field(description="TensorRT-LLM release image (trtllm-serve).")
    build: str = Field(description="Image that runs fetch, convert, quantize and trtllm-build.")


class ToolchainCapabilities(_Data):
    """What a toolchain can do."""

    engine_build: bool = Field(
        description="The operator builds TensorRT engines with it (convert_checkpoint.py and "
        "trtllm-build, with option inventories in build_jobs/cli_options)."
    )
    ships_engine_tools: bool = Field(
        description="The release itself still ships trtllm-build and convert_checkpoint.py (an "
        "upstream fact, true where engine_build is false only because the operator has "
        "not inventoried them)."
    )
    pytorch_backend: bool = Field(
        description="Serves Hugging Face checkpoints with the PyTorch backend."
    )
    triton_runtime: bool = Field(description="Has a Triton image with the tensorrtllm backend.")
    trtllm_serve_runtime: bool = Field(description="Has trtllm-serve.")
    lora: bool = Field(description="Supports LoRA adapters.")
    quantize_hf_export: bool = Field(
        description="quantize.py has --export_format hf (a quantized Hugging Face checkpoint "
        "for backend pytorch)."
    )
    serve_kv_cache_dtype: bool = Field(
        description="trtllm-serve's kv_cache_config has dtype (an fp8 KV cache set at run time on "
        "a checkpoint without KV-cache quantization, backend pytorch)."
    )


class ToolchainScripts(_Data):
    """Paths of NVIDIA's scripts inside the toolchain's images."""

    convert_checkpoint: dict[str, str] = Field(
        description="convert_checkpoint.py per model family."
    )
    quantize: str | None = Field(description="examples/quantization/quantize.py (ModelOpt).")
    hf_lora_convert: str | None = Field(description="hf_lora_convert.py (HF adapter -> .npy).")
    triton_skeleton: str | None = Field(description="Triton skeleton model repository.")
    fill_template: str | None = Field(description="Triton's tools/fill_template.py.")
    launcher: str | None = Field(description="Triton's scripts/launch_triton_server.py.")


class ToolchainPorts(_Data):
    """Default ports of the servers in a toolchain's images."""

    http: int = Field(description="Triton HTTP port.")
    grpc: int = Field(description="Triton gRPC port.")
    metrics: int = Field(description="Triton metrics port.")
    serve: int = Field(description="trtllm-serve port (OpenAI API, /health, /prometheus/metrics).")


class Toolchain(_Data):
    """One named toolchain profile."""

    name: str = Field(description="Profile name, e.g. trtllm-1.0.")
    trtllm_version: str = Field(description="TensorRT-LLM version inside the images.")
    images: ToolchainImages
    capabilities: ToolchainCapabilities
    scripts: ToolchainScripts
    ports: ToolchainPorts
    lora_target_modules: tuple[str, ...] = Field(
        description="Modules trtllm-build accepts for LoRA."
    )
    triton_models: tuple[str, ...] = Field(
        (),
        description="Triton model repositories the release's Triton image line carries under "
        "/app/all_models (inflight_batcher_llm: C++ tensorrtllm backend over engines; llmapi: "
        "Python LLM-API model).",
    )
    triton_skeleton_lacks: tuple[str, ...] = Field(
        (),
        description="Placeholders the operator knows from newer skeletons that this release's "
        "Triton skeleton does not have live (absent, or only inside a comment): "
        "params.json must not set them.",
    )

    def convert_script(self, family: str) -> str | None:
        """The convert_checkpoint.py path for a model family (llama, gpt, qwen, ...), or None."""
        return self.scripts.convert_checkpoint.get(family)


@cache
def load_toolchains() -> dict[str, Toolchain]:
    """All toolchain profiles by name, read once from the packaged toolchains.yaml."""
    text = resources.files(__package__).joinpath(DATA_FILE).read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    return {name: Toolchain.model_validate({"name": name, **body}) for name, body in raw.items()}


def toolchain(name: str) -> Toolchain:
    """The toolchain profile called `name`; KeyError naming the known profiles when there is
    none."""
    profiles = load_toolchains()
    if name not in profiles:
        raise KeyError(f"unknown toolchain {name!r}; known: {', '.join(sorted(profiles))}")
    return profiles[name]


def toolchain_names() -> list[str]:
    """Names of all toolchain profiles, sorted."""
    return sorted(load_toolchains())


def toolchains_with(capability: str) -> list[str]:
    """Sorted names of the toolchains whose capability (snake_case field name) is true."""
    return sorted(
        name for name, tc in load_toolchains().items() if getattr(tc.capabilities, capability)
    )


# Operator-level image overrides (mirrors, digest pins, patched or stand-in images), set once at
# start-up from --image-override / $TRTLLM_IMAGE_OVERRIDES. They change which image a pod pulls,
# never the engine key: the key names the toolchain's own image, which a mirror or digest of it
# stands for.
_image_overrides: dict[str, str] = {}


def parse_image_overrides(entries: Iterable[str]) -> dict[str, str]:
    """{from: to} from `FROM=TO` entries; ValueError naming a malformed entry.

    FROM is an exact image reference, a prefix ending in "/" (a registry or repository mirror), or
    "*" (every toolchain image)."""
    overrides = {}
    for entry in entries:
        source, sep, target = entry.strip().partition("=")
        if not sep or not source or not target:
            raise ValueError(
                f"image override {entry!r} is not FROM=TO (e.g. "
                "nvcr.io/nvidia/=mirror.local/nvidia/)"
            )
        overrides[source] = target
    return overrides


def set_image_overrides(overrides: dict[str, str]) -> None:
    """Install the overrides pod_image() applies (replacing earlier ones)."""
    _image_overrides.clear()
    _image_overrides.update(overrides)


def pod_image(image: str) -> str:
    """The image a pod runs for a toolchain image: an exact override, else the longest prefix
    override, else "*", else the image itself."""
    if image in _image_overrides:
        return _image_overrides[image]
    prefixes = [p for p in _image_overrides if p.endswith("/") and image.startswith(p)]
    if prefixes:
        longest = max(prefixes, key=len)
        return _image_overrides[longest] + image[len(longest) :]
    return _image_overrides.get("*", image)
