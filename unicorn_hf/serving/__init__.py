"""Serving a trained Unicorn checkpoint with vLLM (`vllm_unicorn`) and the vLLM plugin that registers it (`plugin`).

Nothing here is imported by `unicorn_hf` itself: vLLM imports `unicorn_hf.serving.plugin:register` through the
`vllm.general_plugins` entry point of this package, in every vLLM process, before it reads a model's config.
"""
