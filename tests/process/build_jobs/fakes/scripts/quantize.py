"""Fake quantize.py: a TensorRT-LLM checkpoint, or a Hugging Face one with --export_format hf."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from record import record, value  # noqa: E402

argv = record("quantize")
out = value(argv, "--output_dir")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "config.json"), "w") as handle:
    json.dump(
        {"quantization": value(argv, "--qformat"), "kv_cache": value(argv, "--kv_cache_dtype")},
        handle,
    )
if value(argv, "--export_format") == "hf":
    names = ["model.safetensors"]
else:
    world = int(value(argv, "--tp_size", default="1")) * int(value(argv, "--pp_size", default="1"))
    names = [f"rank{rank}.safetensors" for rank in range(world)]
for name in names:
    with open(os.path.join(out, name), "wb") as handle:
        handle.write(b"\1" * 2048)
