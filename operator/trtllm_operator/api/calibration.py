"""Calibration data for quantization: where the build calibrates, and which dataset directories
the tools can read (what the CRD's rules in api/rules.py check, in Python and as CEL text).

Read from NVIDIA's sources (the inventories' quantize.py and convert_checkpoint.py, and the
library code they call): `--calib_dataset` takes "the huggingface dataset name or the local
directory of the dataset". By name, quantize.py loads only the datasets it knows (cnn_dailymail,
pileval, ScienceQA) and downloads them; a local directory is read with datasets.load_dataset,
split train, column text (a path naming cnn_dailymail: config 3.0.0, column article).
convert_checkpoint.py's own calibration (an int8 / fp8 KV cache with no quantize.py weight format)
reads a local directory only as a copy of a dataset it knows by the name in the path.
"""

from __future__ import annotations

from typing import Any

from trtllm_operator.api.models import QUANTIZE_SCRIPT_WEIGHTS
from trtllm_operator.api.sources import PVC_SOURCE, TRAVERSAL, is_pvc_source

FIELD = "calibrationDataset"
# Where the build calibrates (TensorRT-LLM's QuantConfig._requires_calibration): quantize.py for
# its weight formats; the family's convert_checkpoint.py for an int8 or fp8 KV cache alone (engine
# path; the PyTorch backend sets the KV-cache dtype at run time, with no build).
CALIBRATES_CEL = (
    f"self.quantization.weights in {list(QUANTIZE_SCRIPT_WEIGHTS)!r} "
    "|| (self.backend == 'tensorrt' && self.quantization.kvCache != 'none')"
)
# tensorrt_llm/models/convert_utils.load_calib_dataset: the name in the path picks the config,
# split and column (cnn_dailymail: 3.0.0, train, article; lambada: validation, text); any other
# directory is loaded with no split and fails.
CONVERT_DATASETS = ("cnn_dailymail", "lambada")

SOURCE_CEL = f"self.matches('{PVC_SOURCE}') && !self.matches('{TRAVERSAL}')"
SOURCE_MESSAGE = (
    "must be pvc://<claim>/<path>: a directory on a PVC of this namespace holding the dataset "
    "(no '..' in the path). hf:// is not accepted: quantize.py loads a Hub dataset only by the "
    "names it knows, and downloads it; copy the dataset onto a claim instead (docs/choosing.md)"
)
NOT_CALIBRATED_MESSAGE = (
    "quantization.calibrationDataset needs a quantization that calibrates: weights int4_awq, "
    "w4a8_awq, int8_sq, fp8 or nvfp4 (quantize.py), or kvCache int8 / fp8 with backend tensorrt "
    "(convert_checkpoint.py). Weights none, int8_wo or int4_wo with no KV-cache quantization "
    "calibrate nothing, nor does backend pytorch without weight quantization (its KV-cache dtype "
    "is set at run time): remove the field"
)
CONVERT_MESSAGE = (
    "quantization.calibrationDataset must name cnn_dailymail or lambada in its path when only the "
    "KV cache is calibrated: convert_checkpoint.py reads it, and takes a local directory only as "
    "a copy of a dataset it knows by the name in the path: cnn_dailymail (config 3.0.0, split "
    "train, column article) or lambada "
    "(split validation, column text). Put the copy at a path containing that name (e.g. "
    "pvc://datasets/cnn_dailymail), or use a quantize.py weight format, which reads any dataset "
    "directory (split train, column text)"
)


def calibrates(engine: Any) -> bool:
    """CALIBRATES_CEL in Python, over an EngineSpec's JSON data."""
    quant = engine.get("quantization") or {}
    weights, kv_cache = quant.get("weights", "none"), quant.get("kvCache", "none")
    return weights in QUANTIZE_SCRIPT_WEIGHTS or (
        engine.get("backend", "tensorrt") == "tensorrt" and kv_cache != "none"
    )


def dataset_is_used(engine: Any) -> bool:
    """No calibration dataset, or one the build reads (the rule with NOT_CALIBRATED_MESSAGE)."""
    return FIELD not in (engine.get("quantization") or {}) or calibrates(engine)


def convert_can_read(engine: Any) -> bool:
    """A calibration dataset that convert_checkpoint.py reads names a dataset it knows in its path
    (true without a dataset, when quantize.py calibrates, or when nothing calibrates: the other
    rule speaks then)."""
    quant = engine.get("quantization") or {}
    dataset = quant.get(FIELD)
    if dataset is None or quant.get("weights", "none") in QUANTIZE_SCRIPT_WEIGHTS:
        return True
    return not calibrates(engine) or any(name in dataset for name in CONVERT_DATASETS)


def convert_can_read_cel() -> str:
    """convert_can_read as CEL over an EngineSpec."""
    known = " || ".join(f"self.quantization.{FIELD}.contains('{n}')" for n in CONVERT_DATASETS)
    return (
        f"!has(self.quantization.{FIELD}) "
        f"|| self.quantization.weights in {list(QUANTIZE_SCRIPT_WEIGHTS)!r} "
        f"|| !({CALIBRATES_CEL}) || {known}"
    )


def is_calibration_source(uri: str) -> bool:
    """The SOURCE_CEL rule in Python: a pvc:// directory (hf:// is refused)."""
    return is_pvc_source(uri)
