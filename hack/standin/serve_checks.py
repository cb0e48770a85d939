"""trtllm-serve's command line and start-up checks of what it would open: the model directory, the
tokenizer, the extra_llm_api_options YAML and its LoRA adapters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

BACKENDS = ("pytorch", "tensorrt", "_autodeploy")
HF_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
USAGE = "Usage: trtllm-serve serve [OPTIONS] MODEL"


class StartError(Exception):
    """trtllm-serve cannot start; the message names the file or option."""


class ClickArgs(argparse.ArgumentParser):
    """argparse speaking click's errors: usage, a hint, `Error: ...`, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(
            f"{USAGE}\nTry 'trtllm-serve serve --help' for help.\n\nError: {message}",
            file=sys.stderr,
        )
        sys.exit(2)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """`trtllm-serve serve MODEL [OPTIONS]`: the options the operator uses and a few common ones."""
    if not argv or argv[0] in ("--help", "-h"):
        print(
            "Usage: trtllm-serve [OPTIONS] COMMAND [ARGS]...\n\nCommands:\n"
            "  serve  Running an OpenAI API "
            "compatible server (stand-in)"
        )
        sys.exit(0 if argv else 2)
    if argv[0] != "serve":
        ClickArgs(prog="trtllm-serve").error(f"No such command '{argv[0]}'.")
    parser = ClickArgs(
        prog="trtllm-serve serve",
        allow_abbrev=False,
        description="Stand-in trtllm-serve (trtllm-operator): OpenAI API, simulated GPU.",
    )
    parser.add_argument("model")
    parser.add_argument("--tokenizer")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=BACKENDS, default="pytorch")
    parser.add_argument("--log_level", default="info")
    for name, default in (
        ("max_batch_size", 2048),
        ("max_num_tokens", 8192),
        ("max_seq_len", None),
        ("max_beam_width", 1),
        ("tp_size", 1),
        ("pp_size", 1),
        ("ep_size", None),
        ("gpus_per_node", None),
        ("num_postprocess_workers", 0),
    ):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--kv_cache_free_gpu_memory_fraction", type=float, default=0.9)
    parser.add_argument("--extra_llm_api_options")
    parser.add_argument("--trust_remote_code", action="store_true")
    args, unknown = parser.parse_known_args(argv[1:])
    if unknown:
        parser.error(f"No such option: {unknown[0]}")
    return args


def check_model(args: argparse.Namespace) -> None:
    """The model directory: an engine (rank0.engine + config.json) for --backend tensorrt, else a
    Hugging Face checkpoint (config.json and weights)."""
    model = Path(args.model)
    if not model.is_dir():
        raise StartError(
            f"model directory {model} does not exist (the node has no Hugging Face access)"
        )
    if not (model / "config.json").is_file():
        raise StartError(
            f"{model} holds no config.json: neither a Hugging Face checkpoint nor an engine"
        )
    if args.backend == "tensorrt":
        if not (model / "rank0.engine").is_file():
            raise StartError(
                f"--backend tensorrt: {model} holds no rank0.engine (not a built engine)"
            )
        ranks = args.tp_size * args.pp_size
        missing = [
            f"rank{r}.engine" for r in range(ranks) if not (model / f"rank{r}.engine").is_file()
        ]
        if missing:
            raise StartError(
                f"--tp_size x --pp_size = {ranks} but {model} holds no {', '.join(missing)}"
            )
    elif not any(model.glob("*.safetensors")) and not any(model.glob("*.bin")):
        raise StartError(
            f"{model} holds no weights (*.safetensors or *.bin): not a Hugging Face checkpoint"
        )
    if args.tokenizer and not Path(args.tokenizer).is_dir():
        raise StartError(f"--tokenizer {args.tokenizer} does not exist")


def load_options(path: str | None) -> dict[str, Any]:
    """The extra_llm_api_options mapping (empty without the option); StartError naming the file."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise StartError(f"--extra_llm_api_options {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise StartError(f"--extra_llm_api_options {path} is not YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StartError(
            f"--extra_llm_api_options {path} must hold a mapping, not {type(data).__name__}"
        )
    return data


def check_options(args: argparse.Namespace, options: dict[str, Any]) -> None:
    """What the LLM API would reject at start: the KV-cache fraction, LoRA adapter directories."""
    if not 0 < args.kv_cache_free_gpu_memory_fraction <= 1:
        raise StartError("--kv_cache_free_gpu_memory_fraction must be in (0, 1]")
    lora = options.get("lora_config")
    if lora is None:
        return
    if not isinstance(lora, dict):
        raise StartError(f"{args.extra_llm_api_options}: lora_config must be a mapping")
    dirs = lora.get("lora_dir", [])
    for entry in [dirs] if isinstance(dirs, str) else dirs:
        check_adapter(args.extra_llm_api_options, str(entry))


def check_adapter(options_path: str, entry: str) -> None:
    """One lora_config.lora_dir entry: a Hugging Face PEFT adapter directory."""
    path = Path(entry)
    if not path.is_dir():
        raise StartError(f"{options_path}: lora_config.lora_dir entry {entry} does not exist")
    missing = [f for f in HF_ADAPTER_FILES if not (path / f).is_file()]
    if missing:
        raise StartError(
            f"{options_path}: lora_config.lora_dir entry {entry} is not a Hugging Face adapter "
            f"directory (no {', '.join(missing)})"
        )
