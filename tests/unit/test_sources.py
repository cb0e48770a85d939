"""The operator's source parser (spec/sources.py, also the CRD's CEL rule) and build_jobs' own
copy accept and reject the same URIs and split them into the same parts."""

from __future__ import annotations

import pytest
from build_jobs import sources as job_sources

from trtllm_operator.api import sources
from trtllm_operator.api.rules import all_rules

ACCEPTED = [
    "hf://gpt2",
    "hf://meta-llama/Llama-2-7b-chat-hf",
    "hf://TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    "hf://org/name_v2.1",
    "pvc://models",
    "pvc://models/",
    "pvc://models/llama/7b",
    "pvc://models/llama/7b/",
    "pvc://models//llama",
    "pvc://m0-d/with space",
    "pvc://models/a..b",
    "pvc://models/..x/y",
]
REJECTED = [
    # A ".." segment leaves the claim: pvc://models/../../etc is /etc in the pods.
    "pvc://models/../../etc",
    "pvc://models/..",
    "pvc://models/a/../b",
    "",
    "hf://",
    "hf://org/",
    "hf://org/a/b",
    "hf://_org/x",
    "hf://org/-x",
    "hf:/org/x",
    "HF://org/x",
    " hf://org/x",
    "pvc://",
    "pvc:///x",
    "pvc://Bad_Claim/x",
    "pvc://-models/x",
    "pvc://models-/x",
    "s3://bucket/model",
    "https://huggingface.co/gpt2",
    "models/llama",
]


@pytest.mark.parametrize("uri", ACCEPTED + REJECTED)
def test_both_parsers_agree(uri: str) -> None:
    accepted = uri in ACCEPTED
    assert sources.is_source(uri) is accepted
    assert job_sources.is_source(uri) is accepted


@pytest.mark.parametrize("uri", REJECTED)
def test_both_parsers_refuse(uri: str) -> None:
    with pytest.raises(ValueError):
        sources.parse_source(uri)
    with pytest.raises(ValueError):
        job_sources.parse_source(uri)


@pytest.mark.parametrize("uri", ACCEPTED)
def test_both_parsers_split_alike(uri: str) -> None:
    ours, theirs = sources.parse_source(uri), job_sources.parse_source(uri)
    if isinstance(ours, sources.HfSource):
        assert (theirs.scheme, theirs.repo) == ("hf", ours.repo)
    else:
        assert (theirs.scheme, theirs.claim, theirs.path) == ("pvc", ours.claim, ours.path)


def test_the_crd_rule_uses_the_same_patterns() -> None:
    """The API server's CEL rule is built from the patterns both parsers use."""
    cel = {rule.cel for rule in all_rules() if rule.check is sources.is_source}
    hf, pvc = job_sources.HF_SOURCE, job_sources.PVC_SOURCE
    traversal = job_sources.TRAVERSAL
    assert cel == {
        f"(self.matches('{hf}') || self.matches('{pvc}')) && !self.matches('{traversal}')"
    }


def test_pvc_claims() -> None:
    assert sources.pvc_claim("pvc://models/llama") == "models"
    assert sources.pvc_claim("hf://org/name") is None
    assert sources.pvc_claim("s3://bucket/x") is None
