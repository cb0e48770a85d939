"""run.py as a process: PyTorch backend, adapters, hf:// fetch through a
fake huggingface_hub, cleanup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.process.build_jobs.conftest import ALL_MODULES, FAKES, Sandbox


def test_pytorch_backend_fetch_only(sandbox: Sandbox) -> None:
    result = sandbox.run(sandbox.request(backend="pytorch", engineKey="pt"))
    assert result.code == 0, result.output
    assert result.calls == []
    manifest = json.loads((sandbox.root / "engines" / "pt" / "manifest.json").read_text())
    assert manifest["backend"] == "pytorch"
    assert manifest["checkpoint"] == str(sandbox.pvc / "models" / "llama-7b")


def test_pytorch_backend_quantizes_with_modelopt_only_when_asked(sandbox: Sandbox) -> None:
    request = sandbox.request(
        backend="pytorch", engineKey="ptq", quantization={"weights": "fp8", "kvCache": "fp8"}
    )
    request["toolchain"]["name"] = "trtllm-1.2"  # 1.0/1.1's quantize.py has no --export_format
    result = sandbox.run(request)
    assert result.code == 0, result.output
    assert [call["tool"] for call in result.calls] == ["quantize"]
    argv = result.calls[0]["argv"]
    assert argv[argv.index("--export_format") + 1] == "hf" and "--tp_size" not in argv
    engine = sandbox.root / "engines" / "ptq"
    assert (engine / "checkpoint" / "model.safetensors").is_file()
    assert json.loads((engine / "manifest.json").read_text())["checkpoint"] == "checkpoint"


def _adapter_request(sandbox: Sandbox, **lora: object) -> dict:
    request = sandbox.request(
        action="adapter", adapter={"key": "a1", "name": "osamu", "source": "pvc://adapters/osamu"}
    )
    if lora:
        request["lora"] = lora
    return request


def test_adapter_converted_with_engine_dtype(sandbox: Sandbox) -> None:
    request = _adapter_request(sandbox, maxRank=8, targetModules=ALL_MODULES)
    request["dtype"] = "bfloat16"
    result = sandbox.run(request)
    assert result.code == 0, result.output
    argv = result.calls[0]["argv"]
    assert argv[argv.index("--storage-type") + 1] == "bfloat16"
    adapter = sandbox.root / "adapters" / "a1"
    assert (adapter / "model.lora_weights.npy").is_file() and (
        adapter / "model.lora_config.npy"
    ).is_file()
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["modules"] == ["attn_dense", "attn_k", "attn_q", "attn_v"]
    assert sandbox.run(request).calls == []


def test_adapter_needing_modules_the_engine_lacks_fails(sandbox: Sandbox) -> None:
    result = sandbox.run(_adapter_request(sandbox, maxRank=8, targetModules=["attn_q", "attn_v"]))
    assert result.code == 3 and result.calls == []
    assert "attn_dense" in result.termination["error"] and "attn_k" in result.termination["error"]


def test_adapter_rank_above_max_rank_fails(sandbox: Sandbox) -> None:
    result = sandbox.run(_adapter_request(sandbox, maxRank=4, targetModules=ALL_MODULES))
    assert result.code == 3 and "rank 8 exceeds" in result.termination["error"]


def test_hf_fetch_resolves_commit_and_hides_token(sandbox: Sandbox) -> None:
    request = {"action": "fetch", "model": {"source": "hf://org/tiny-llama", "revision": "main"}}
    secret = "hf_supersecret_value"
    result = sandbox.run(request, PYTHONPATH=str(FAKES / "hub"), HF_TOKEN=secret)
    assert result.code == 0, result.output
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert [c["tool"] for c in result.calls] == [
        "huggingface_hub.model_info",
        "huggingface_hub.snapshot_download",
    ]
    assert result.calls[1]["kwargs"] == {
        "repo_id": "org/tiny-llama",
        "revision": commit,
        "token_set": True,
    }
    model = sandbox.root / "models" / "org" / "tiny-llama" / commit
    assert (model / "config.json").is_file() and not (model / ".cache").exists()
    assert (
        sandbox.root / "models" / "org" / "tiny-llama" / "refs" / "main"
    ).read_text().strip() == commit
    assert result.termination["commit"] == commit
    sizes = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
    assert result.termination["modelBytes"] == sizes > 0
    assert secret not in result.output and secret not in sandbox.termination.read_text()
    again = sandbox.run(request, PYTHONPATH=str(FAKES / "hub"))
    assert [c["tool"] for c in again.calls] == ["huggingface_hub.model_info"]
    assert again.termination["reused"] is True


def test_hf_build_uses_the_fetched_snapshot(sandbox: Sandbox) -> None:
    request = sandbox.request(model={"source": "hf://org/tiny-llama", "revision": "main"})
    result = sandbox.run(request, PYTHONPATH=str(FAKES / "hub"))
    assert result.code == 0, result.output
    convert = result.calls[2]["argv"]
    assert convert[convert.index("--model_dir") + 1].endswith(
        "org/tiny-llama/0123456789abcdef0123456789abcdef01234567"
    )


def test_hf_without_huggingface_hub_is_a_clear_error(sandbox: Sandbox) -> None:
    broken = sandbox.tmp / "nohub" / "huggingface_hub"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('not in this image')\n")
    result = sandbox.run(
        {"action": "fetch", "model": {"source": "hf://org/x"}}, PYTHONPATH=str(broken.parent)
    )
    assert result.code == 3 and "huggingface_hub is not importable" in result.termination["error"]


KEY = (
    "3f2a9c" + "0" * 57
)  # what the operator's engine-key label holds: 63 of the sha256's 64 hex digits


def test_cleanup_removes_only_its_own_engine(sandbox: Sandbox) -> None:
    assert sandbox.run(sandbox.request(engineKey=KEY)).code == 0
    siblings = [
        sandbox.root / "engines" / "k7b",
        sandbox.root / "engines" / ("a" * 63),
        sandbox.root / "models",
    ]
    for sibling in siblings:
        (sibling / "keep").mkdir(parents=True, exist_ok=True)
    result = sandbox.run({"action": "cleanup", "engineKey": KEY})
    assert result.code == 0 and result.termination["removed"] == [f"engines/{KEY}"]
    assert not (sandbox.root / "engines" / KEY).exists()
    assert all((sibling / "keep").is_dir() for sibling in siblings)


@pytest.mark.parametrize(
    "key", ["", "../", "..", ".", "x", "k7b", KEY.upper(), KEY + "00", f"{KEY[:-1]}/"]
)
def test_cleanup_with_an_invalid_key_removes_nothing(sandbox: Sandbox, key: str) -> None:
    engines = sandbox.root / "engines"
    for name in ("x", "k7b", KEY):
        (engines / name / "keep").mkdir(parents=True)
    result = sandbox.run({"action": "cleanup", "engineKey": key})
    assert result.code == 3, result.output
    assert result.termination["ok"] is False and result.termination["error"]
    assert all((engines / name / "keep").is_dir() for name in ("x", "k7b", KEY))
    assert (sandbox.pvc / "models" / "llama-7b" / "config.json").is_file()


def test_cleanup_never_follows_a_symlink(sandbox: Sandbox) -> None:
    outside = sandbox.tmp / "elsewhere"
    (outside / "keep").mkdir(parents=True)
    (sandbox.root / "engines").mkdir()
    (sandbox.root / "engines" / KEY).symlink_to(outside, target_is_directory=True)
    result = sandbox.run({"action": "cleanup", "engineKey": KEY})
    assert result.code == 3 and "symlink" in result.termination["error"]
    assert (outside / "keep").is_dir() and (sandbox.root / "engines" / KEY).is_symlink()


def test_cleanup_checks_every_key_before_removing_any(sandbox: Sandbox) -> None:
    (sandbox.root / "engines" / KEY / "keep").mkdir(parents=True)
    adapter = {"key": "ab", "source": "pvc://adapters/osamu"}  # passes parsing, not a real key
    result = sandbox.run({"action": "cleanup", "engineKey": KEY, "adapter": adapter})
    assert result.code == 3 and (sandbox.root / "engines" / KEY / "keep").is_dir()


def test_a_cache_the_fetch_user_cannot_write_is_a_permanent_error_naming_the_fix(
    tmp_path: Path,
) -> None:
    from build_jobs.run import writable_cache
    from build_jobs.stages import JobError

    with pytest.raises(JobError) as raised, writable_cache(tmp_path):
        raise PermissionError(13, "Permission denied", str(tmp_path / "models" / "org"))
    message = str(raised.value)
    assert not raised.value.retryable and "not writable by uid" in message
    assert "chown -R" in message and "spec.jobs.pod.securityContext" in message


def test_the_jobs_write_group_writable_files(sandbox: Sandbox) -> None:
    result = sandbox.run(
        {"action": "fetch", "model": {"source": "hf://org/tiny-llama"}},
        PYTHONPATH=str(FAKES / "hub"),
    )
    assert result.code == 0, result.output
    models = sandbox.root / "models"
    assert models.stat().st_mode & 0o020, "group write: the non-root fetch shares the volume"
