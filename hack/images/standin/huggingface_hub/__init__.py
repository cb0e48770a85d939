"""Stand-in for the `huggingface_hub` library, in the local nvidia-standin image only.

It exists only because no Hugging Face hub is reachable from these machines: a real user's image
has the real library. It answers the two calls the build Jobs make (`HfApi().model_info(...).sha`
and `snapshot_download(...)`) with no network: every (repo, revision) resolves to a deterministic
commit, and a snapshot is a small llama checkpoint (config.json, tokenizer files, a safetensors
file).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct

__version__ = "0.0.0+trtllm-operator-standin"

COMMIT = re.compile(r"^[0-9a-f]{40}$")
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 1000,
    "max_position_embeddings": 4096,
    "torch_dtype": "float16",
}
TOKENIZER_CONFIG = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "model_max_length": 4096,
}
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
SPECIAL_IDS = {"<unk>": 0, "<s>": 1, "</s>": 2}


def commit_for(repo_id: str, revision: str | None) -> str:
    """The commit a revision resolves to: itself when it is one, else a stable hash of both."""
    revision = revision or "main"
    if COMMIT.match(revision):
        return revision
    return hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()


class ModelInfo:
    """The part of huggingface_hub's ModelInfo the build Jobs read."""

    def __init__(self, repo_id: str, sha: str) -> None:
        self.id = repo_id
        self.sha = sha


class HfApi:
    """Only model_info, resolving a revision with commit_for()."""

    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        self.token = token

    def model_info(
        self, repo_id: str, revision: str | None = None, token: str | None = None, **_: object
    ) -> ModelInfo:
        """The model's info at revision; .sha is the commit (deterministic per repo, revision)."""
        return ModelInfo(repo_id, commit_for(repo_id, revision))


def snapshot_download(
    repo_id: str,
    revision: str | None = None,
    local_dir: str | None = None,
    token: str | None = None,
    **_: object,
) -> str:
    """Write a small llama snapshot of repo_id into local_dir; returns the directory (as the real
    one does)."""
    commit = commit_for(repo_id, revision)
    if local_dir is None:
        home = os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface")
        repo = "models--" + repo_id.replace("/", "--")
        local_dir = os.path.join(home, "hub", repo, "snapshots", commit)
    os.makedirs(os.path.join(local_dir, ".cache", "huggingface"), exist_ok=True)
    files = {
        "config.json": json.dumps(CONFIG, indent=2),
        "generation_config.json": json.dumps({"bos_token_id": 1, "eos_token_id": 2}),
        "tokenizer_config.json": json.dumps(TOKENIZER_CONFIG, indent=2),
        "special_tokens_map.json": json.dumps(SPECIAL_TOKENS),
        "tokenizer.json": json.dumps(_tokenizer()),
        "README.md": f"Stand-in snapshot of {repo_id} at {commit} (no hub reachable).\n",
    }
    for name, text in files.items():
        with open(os.path.join(local_dir, name), "w") as handle:
            handle.write(text + "\n")
    with open(os.path.join(local_dir, "model.safetensors"), "wb") as handle:
        handle.write(_safetensors(commit))
    return local_dir


def _tokenizer() -> dict:
    vocab = dict(SPECIAL_IDS)
    vocab.update({f"tok{i}": i for i in range(3, CONFIG["vocab_size"])})
    return {
        "version": "1.0",
        "added_tokens": [{"id": i, "content": t, "special": True} for t, i in SPECIAL_IDS.items()],
        "pre_tokenizer": {"type": "Whitespace"},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    }


def _safetensors(commit: str) -> bytes:
    """One float16 tensor of shape [8, 4] as safetensors (header length, JSON header, data)."""
    data = hashlib.sha512(commit.encode()).digest()
    header = {
        "__metadata__": {"format": "pt", "standin": "true"},
        "model.embed_tokens.weight": {
            "dtype": "F16",
            "shape": [8, 4],
            "data_offsets": [0, len(data)],
        },
    }
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + data
