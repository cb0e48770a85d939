"""Serving runtimes (Triton, trtllm-serve): what each one needs in the serving pod and its checks."""
