"""Fake hf_lora_convert.py: writes the two .npy files Triton's lora_prefetch_dir expects."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from record import record, value  # noqa: E402

argv = record("hf_lora_convert")
out = value(argv, "-o", "--out-dir")
os.makedirs(out, exist_ok=True)
for name in ("model.lora_weights.npy", "model.lora_config.npy"):
    with open(os.path.join(out, name), "wb") as handle:
        handle.write(b"\x93NUMPY" + b"\0" * 64)
