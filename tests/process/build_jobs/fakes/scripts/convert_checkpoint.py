"""Fake convert_checkpoint.py: writes a TensorRT-LLM checkpoint
(config.json + one rank file per GPU)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from record import record, value  # noqa: E402

argv = record("convert_checkpoint")
out = value(argv, "--output_dir")
# gemma's script: --world-size (tensor only)
world = int(value(argv, "--world-size", default="0")) or (
    int(value(argv, "--tp_size", default="1")) * int(value(argv, "--pp_size", default="1"))
)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "config.json"), "w") as handle:
    json.dump({"architecture": "LlamaForCausalLM", "dtype": value(argv, "--dtype")}, handle)
for rank in range(world):
    with open(os.path.join(out, f"rank{rank}.safetensors"), "wb") as handle:
        handle.write(b"\0" * 1024)
