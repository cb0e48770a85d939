"""KServe v2 tensors as Triton carries them: JSON data, the binary-data extension (HTTP) and
raw_input_contents (gRPC); and the text requests the stand-in answers, decoded from either."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from tritonclient.grpc import service_pb2

DEFAULT_MAX_TOKENS = 16
FORMATS = {
    "BOOL": "?",
    "INT8": "b",
    "UINT8": "B",
    "INT16": "h",
    "UINT16": "H",
    "INT32": "i",
    "UINT32": "I",
    "INT64": "q",
    "UINT64": "Q",
    "FP32": "f",
    "FP64": "d",
}
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


class BadRequestError(ValueError):
    """The request's tensors cannot be read; the message says which."""


@dataclass
class TextRequest:
    """Prompts (one per batch row) and what the client asked for."""

    texts: list[str]
    max_tokens: list[int]
    stream: bool | None = None
    request_id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


def decode_raw(datatype: str, raw: bytes) -> list[Any]:
    """Values of one raw tensor: BYTES as 4-byte little-endian length + bytes, others packed."""
    if datatype == "BYTES":
        items, offset = [], 0
        while offset < len(raw):
            (length,) = struct.unpack_from("<I", raw, offset)
            items.append(raw[offset + 4 : offset + 4 + length])
            offset += 4 + length
        return items
    if datatype not in FORMATS:
        raise BadRequestError(f"unsupported datatype {datatype}")
    size = struct.calcsize(FORMATS[datatype])
    return list(struct.unpack(f"<{len(raw) // size}{FORMATS[datatype]}", raw))


def encode_bytes(items: list[bytes]) -> bytes:
    """A BYTES tensor in Triton's raw serialization."""
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def text_request(values: dict[str, list[Any]], request_id: str = "") -> TextRequest:
    """The text request in decoded tensors: text_input (required), max_tokens, stream (optional)."""
    if "text_input" not in values:
        raise BadRequestError(f"input 'text_input' is required; got {sorted(values)}")
    texts = [v.decode() if isinstance(v, bytes) else str(v) for v in values["text_input"]]
    if not texts:
        raise BadRequestError("input 'text_input' is empty")
    asked = [int(v) for v in values.get("max_tokens", [])] or [DEFAULT_MAX_TOKENS]
    if len(asked) not in (1, len(texts)):
        raise BadRequestError(f"max_tokens has {len(asked)} values for {len(texts)} prompts")
    stream = bool(values["stream"][0]) if values.get("stream") else None
    return TextRequest(texts, asked * len(texts) if len(asked) == 1 else asked, stream, request_id)


def http_request(body: bytes, header_length: str | None) -> tuple[TextRequest, bool]:
    """(request, reply in binary) from an HTTP infer body, JSON or JSON + binary data."""
    split = int(header_length) if header_length else len(body)
    try:
        header = json.loads(body[:split])
    except ValueError as error:
        raise BadRequestError(f"request body is not JSON: {error}") from None
    values, offset = {}, split
    for tensor in header.get("inputs", []):
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            values[tensor["name"]] = decode_raw(tensor["datatype"], body[offset : offset + size])
            offset += size
        else:
            values[tensor["name"]] = _flatten(tensor.get("data", []))
    binary = bool((header.get("parameters") or {}).get("binary_data_output"))
    for output in header.get("outputs", []):
        binary = binary or bool((output.get("parameters") or {}).get("binary_data"))
    return text_request(values, str(header.get("id", ""))), binary


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list):
        return [item for part in data for item in _flatten(part)]
    return [data]


def http_response(
    model: str, texts: list[str], request_id: str, binary: bool
) -> tuple[bytes, dict[str, str]]:
    """(body, extra headers) of an infer response holding text_output [rows, 1]."""
    output: dict[str, Any] = {"name": "text_output", "datatype": "BYTES", "shape": [len(texts), 1]}
    raw = b""
    if binary:
        raw = encode_bytes([t.encode() for t in texts])
        output["parameters"] = {"binary_data_size": len(raw)}
    else:
        output["data"] = texts
    reply: dict[str, Any] = {"model_name": model, "model_version": "1", "outputs": [output]}
    if request_id:
        reply["id"] = request_id
    header = json.dumps(reply).encode()
    if not binary:
        return header, {}
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


def grpc_request(request: service_pb2.ModelInferRequest) -> TextRequest:
    """The text request in a gRPC ModelInferRequest (raw_input_contents or typed contents)."""
    values: dict[str, list[Any]] = {}
    for index, tensor in enumerate(request.inputs):
        if request.raw_input_contents:
            if index >= len(request.raw_input_contents):
                raise BadRequestError(f"no raw contents for input '{tensor.name}'")
            values[tensor.name] = decode_raw(tensor.datatype, request.raw_input_contents[index])
        else:
            values[tensor.name] = list(
                getattr(tensor.contents, CONTENTS.get(tensor.datatype, "bytes_contents"))
            )
    text = text_request(values, request.id)
    text.parameters = {k: _parameter(v) for k, v in request.parameters.items()}
    return text


def _parameter(value: service_pb2.InferParameter) -> Any:
    kind = value.WhichOneof("parameter_choice")
    return getattr(value, kind) if kind else None


def grpc_response(
    model: str, texts: list[str], request_id: str, final: bool
) -> service_pb2.ModelInferResponse:
    """A ModelInferResponse holding text_output [rows, 1] (raw contents, as Triton replies)."""
    response = service_pb2.ModelInferResponse(model_name=model, model_version="1", id=request_id)
    if texts:
        response.outputs.add(name="text_output", datatype="BYTES", shape=[len(texts), 1])
        response.raw_output_contents.append(encode_bytes([t.encode() for t in texts]))
    response.parameters["triton_final_response"].bool_param = final
    return response
