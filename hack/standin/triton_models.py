"""Loading a Triton model repository as far as we can without a GPU: every config.pbtxt parsed into
the real ModelConfig schema, and the files the tensorrtllm and python backends open checked."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from google.protobuf.message import Message
from tritonclient.grpc import model_config_pb2

CONFIG = "config.pbtxt"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENGINE_KEYS = ("gpt_model_path", "engine_dir")
BATCHING = ("V1", "inflight_batching", "inflight_fused_batching")
LORA_FILES = ("model.lora_config.npy", "model.lora_weights.npy")


class LoadError(Exception):
    """One model failed to load; str() is the line Triton would log."""

    def __init__(self, model: str, reason: str):
        super().__init__(f"failed to load '{model}' version 1: Invalid argument: {reason}")
        self.model = model


@dataclass
class Model:
    """A loaded model: its parsed config and what serving needs to know about it."""

    name: str
    config: model_config_pb2.ModelConfig
    path: Path
    decoupled: bool = False
    world_size: int = 1
    engine_max_batch_size: int | None = None
    engine_dir: Path | None = None

    @property
    def generates_text(self) -> bool:
        """True when clients send it text_input (ensemble, tensorrt_llm_bls)."""
        return any(i.name == "text_input" for i in self.config.input)


def model_names(repo: Path) -> list[str]:
    """Every model directory of the repository (hidden ones skipped: leftovers of a filler)."""
    if not repo.is_dir():
        raise LoadError("*", f"model repository {repo} is not a directory")
    return sorted(p.name for p in repo.iterdir() if p.is_dir() and not p.name.startswith("."))


def parse_config(repo: Path, name: str) -> model_config_pb2.ModelConfig:
    """<repo>/<name>/config.pbtxt as a ModelConfig; LoadError naming file, line and placeholder."""
    path = repo / name / CONFIG
    if not path.is_file():
        raise LoadError(name, f"{path} not found (auto-complete is disabled)")
    text = path.read_text()
    left = unquoted_placeholders(text)
    if left:
        raise LoadError(
            name, f"{path}: unfilled placeholder(s) outside a string: {', '.join(left)}"
        )
    try:
        config = text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as error:
        raise LoadError(name, f"{path} does not parse as ModelConfig: {error}") from None
    strict = [
        f"{field} = {value!r}"
        for field, value in config_strings(config)
        if PLACEHOLDER.search(value) and not _is_parameter(field)
    ]
    if strict:
        raise LoadError(name, f"{path}: unfilled placeholder(s) in {'; '.join(strict)}")
    if config.name and config.name != name:
        raise LoadError(name, f"{path}: name '{config.name}' does not match the directory '{name}'")
    return config


def unquoted_placeholders(text: str) -> list[str]:
    """`line N: ${name}` for each placeholder outside quotes and comments (the parser chokes)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for start, end in _unquoted_spans(line):
            found += [f"line {number}: {m.group(0)}" for m in PLACEHOLDER.finditer(line[start:end])]
    return found


def _unquoted_spans(line: str) -> Iterator[tuple[int, int]]:
    start, index, quote = 0, 0, ""
    while index < len(line):
        char = line[index]
        if quote and char == "\\":
            index += 2
            continue
        if not quote and char == "#":
            yield start, index
            return
        if char in "\"'" and (not quote or char == quote):
            if not quote:
                yield start, index
            quote = "" if quote else char
            start = index + 1
        index += 1
    if not quote:
        yield start, index


def config_strings(message: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(field path, value) for every string in a parsed config, map keys included in the path."""
    if isinstance(message, str):
        yield path, message
    elif isinstance(message, Message):
        for field, value in message.ListFields():
            yield from config_strings(value, f"{path}.{field.name}" if path else field.name)
    elif hasattr(message, "items"):
        for key, value in message.items():
            yield from config_strings(value, f"{path}[{key!r}]")
    elif hasattr(message, "__iter__") and not isinstance(message, bytes):
        for index, value in enumerate(message):
            yield from config_strings(value, f"{path}[{index}]")


def _is_parameter(field: str) -> bool:
    """A string_value parameter: the backends read `${name}` there as "not set"."""
    return field.startswith("parameters[") and field.endswith(".string_value")


def parameter(config: model_config_pb2.ModelConfig, *keys: str) -> tuple[str, str | None]:
    """(key, value) of the first of `keys` present; value None if absent, empty or a placeholder."""
    for key in keys:
        if key in config.parameters:
            value = config.parameters[key].string_value.strip()
            return key, None if not value or PLACEHOLDER.fullmatch(value) else value
    return keys[0], None


def check_trtllm(model: Model) -> None:
    """What the tensorrtllm backend opens at load: engine, tokenizer, LoRA prefetch directory."""
    config, path = model.config, model.path / CONFIG
    key, engine = parameter(config, *ENGINE_KEYS)
    if engine is None:
        raise LoadError(model.name, f"{path}: parameter {key} (engine_dir) is not set")
    read_engine(model, key, Path(engine))
    _, strategy = parameter(config, "gpt_model_type", "batching_strategy")
    if strategy is not None and strategy not in BATCHING:
        raise LoadError(
            model.name, f"{path}: gpt_model_type {strategy!r} is not one of {', '.join(BATCHING)}"
        )
    check_dir_parameter(model, "tokenizer_dir", required=False)
    check_lora_prefetch(model)


def read_engine(model: Model, key: str, engine: Path) -> None:
    """Check the engine directory holds a built engine; record its ranks and max batch size."""
    prefix = f"{model.path / CONFIG}: parameter {key} (engine_dir) = {engine}"
    if not engine.is_dir():
        raise LoadError(model.name, f"{prefix} does not exist")
    missing = [f for f in ("rank0.engine", "config.json") if not (engine / f).is_file()]
    if missing:
        raise LoadError(model.name, f"{prefix} holds no {' / '.join(missing)}: not a built engine")
    try:
        data = json.loads((engine / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise LoadError(model.name, f"{prefix}: config.json is not JSON: {error}") from None
    data = data if isinstance(data, dict) else {}
    mapping = data.get("pretrained_config", {}).get("mapping", {})
    size = mapping.get("world_size") if isinstance(mapping, dict) else None
    model.world_size = size if isinstance(size, int) else len(list(engine.glob("rank*.engine")))
    batch = data.get("build_config", {}).get("max_batch_size")
    model.engine_max_batch_size = batch if isinstance(batch, int) else None
    model.engine_dir = engine


def check_dir_parameter(model: Model, key: str, required: bool) -> None:
    """A directory parameter, when set (or when required), must exist."""
    path = model.path / CONFIG
    if key not in model.config.parameters:
        return
    _, value = parameter(model.config, key)
    if value is None:
        if required:
            raise LoadError(model.name, f"{path}: parameter {key} is not set")
        return
    if not Path(value).is_dir():
        raise LoadError(model.name, f"{path}: parameter {key} = {value} does not exist")


def check_lora_prefetch(model: Model) -> None:
    """lora_prefetch_dir: <dir>/<task id>/model.lora_{config,weights}.npy (hf_lora_convert's)."""
    path = model.path / CONFIG
    _, value = parameter(model.config, "lora_prefetch_dir")
    if value is None:
        return
    root = Path(value)
    if not root.is_dir():
        raise LoadError(model.name, f"{path}: parameter lora_prefetch_dir = {value} does not exist")
    for task in sorted(root.iterdir()):
        missing = [f for f in LORA_FILES if not (task / f).is_file()]
        if not task.name.isdigit() or missing:
            reason = (
                "is not a task id" if not task.name.isdigit() else f"holds no {' / '.join(missing)}"
            )
            raise LoadError(model.name, f"{path}: lora_prefetch_dir entry {task} {reason}")


def load_model(repo: Path, name: str) -> Model:
    """Parse and check one model (not its ensemble references); LoadError on the first problem."""
    config = parse_config(repo, name)
    model = Model(name, config, repo / name, decoupled=config.model_transaction_policy.decoupled)
    if not any(p.is_dir() and p.name.isdigit() for p in model.path.iterdir()):
        raise LoadError(
            name, f"no model version found: {model.path} has no numeric version directory"
        )
    if config.backend == "tensorrtllm":
        check_trtllm(model)
    elif config.backend == "python":
        check_dir_parameter(model, "tokenizer_dir", required=True)
    return model


def wanted(repo: Path, explicit: list[str] | None) -> list[str]:
    """Models to load: all (model control none/poll), or --load-model ones and their steps."""
    names = model_names(repo)
    if explicit is None:
        return names
    chosen: list[str] = []
    todo = list(explicit)
    while todo:
        name = todo.pop(0)
        if name in chosen:
            continue
        if name not in names:
            raise LoadError(name, f"no model directory {repo / name} in the repository")
        chosen.append(name)
        config = parse_config(repo, name)
        todo += [step.model_name for step in config.ensemble_scheduling.step]
    return sorted(chosen)


def load_repository(repo: Path, explicit: list[str] | None = None) -> dict[str, Model]:
    """Every wanted model, loaded and checked, ensembles resolved; LoadError on the first one."""
    models = {name: load_model(repo, name) for name in wanted(repo, explicit)}
    for model in models.values():
        for step in model.config.ensemble_scheduling.step:
            if step.model_name not in models:
                raise LoadError(
                    model.name,
                    f"{model.path / CONFIG}: ensemble step model "
                    f"'{step.model_name}' is not in the repository",
                )
    for model in models.values():
        model.decoupled = is_decoupled(model, models)
    return models


def is_decoupled(
    model: Model, models: dict[str, Model], seen: frozenset[str] = frozenset()
) -> bool:
    """A model is decoupled by its own policy; an ensemble when any step model is."""
    if model.decoupled or model.name in seen:
        return model.decoupled
    steps = [models[s.model_name] for s in model.config.ensemble_scheduling.step]
    return any(is_decoupled(step, models, seen | {model.name}) for step in steps)
