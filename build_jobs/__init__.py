"""Code that runs inside NVIDIA's images: the fetch/build/adapter Job entrypoint and the Triton
filler.

Standard library only (huggingface_hub is imported lazily, when a hf:// model is fetched).
"""
