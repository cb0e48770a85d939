"""Fake huggingface_hub: records model_info/snapshot_download calls and writes a tiny snapshot."""

import json
import os

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _record(call, **kwargs):
    with open(os.environ["FAKE_RECORD"], "a") as handle:
        handle.write(json.dumps({"tool": f"huggingface_hub.{call}", "kwargs": kwargs}) + "\n")


class _Info:
    sha = FAKE_COMMIT


class HfApi:
    """Only model_info, resolving any revision to FAKE_COMMIT."""

    def model_info(self, repo_id, revision=None, token=None):
        _record("model_info", repo_id=repo_id, revision=revision, token_set=token is not None)
        return _Info()


def snapshot_download(repo_id, revision=None, local_dir=None, token=None):
    """Write config.json (a small llama) and a weights file into local_dir."""
    _record("snapshot_download", repo_id=repo_id, revision=revision, token_set=token is not None)
    os.makedirs(os.path.join(local_dir, ".cache", "huggingface"), exist_ok=True)
    with open(os.path.join(local_dir, "config.json"), "w") as handle:
        json.dump(
            {
                "model_type": "llama",
                "hidden_size": 256,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "vocab_size": 1000,
                "intermediate_size": 512,
            },
            handle,
        )
    with open(os.path.join(local_dir, "model.safetensors"), "wb") as handle:
        handle.write(b"\0" * 100)
    return local_dir
