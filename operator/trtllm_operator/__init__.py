"""trtllm-operator: one LLMDeployment in, a served and autoscaled TensorRT-LLM model out."""

GROUP = "trtllm-operator.dev"
VERSION = "v1alpha1"
__version__ = "0.1.0"
