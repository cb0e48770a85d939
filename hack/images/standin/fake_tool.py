#!/usr/bin/python3
"""Stand-in image: runs the project's fake TensorRT-LLM tool that this file's name stands for.

hack/images.py copies this one file to every tool path of the toolchain profiles
(convert_checkpoint.py per model family, quantize.py, hf_lora_convert.py, trtllm-build); the fakes
live in /opt/standin/fakes.
"""

import os
import sys

FAKES = "/opt/standin/fakes"
TOOLS = {
    "convert_checkpoint.py": "scripts/convert_checkpoint.py",
    "quantize.py": "scripts/quantize.py",
    "hf_lora_convert.py": "scripts/hf_lora_convert.py",
    "trtllm-build": "bin/trtllm-build",
}

if __name__ == "__main__":
    target = os.path.join(FAKES, TOOLS[os.path.basename(__file__)])
    os.execv(sys.executable, [sys.executable, target, *sys.argv[1:]])
