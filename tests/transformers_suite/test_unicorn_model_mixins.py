"""transformers' `ModelTesterMixin` and `GenerationTesterMixin` run on `UnicornModel` and
`UnicornForConditionalGeneration`, set up as transformers' own LLaVA test sets up `LlavaVisionText2TextModelTester`
(tests/models/llava/test_modeling_llava.py), with `image_embeds` [B, D] where LLaVA has `pixel_values`.

The mixins are transformers' files at the installed version, fetched by `python tests/transformers_suite/fetch.py`
into `_vendor/` (git-ignored); without them this module is skipped. Every skip below says why the mixin's test does
not apply to Unicorn, the way transformers' model tests do.
"""

from __future__ import annotations

import unittest
from pathlib import Path
from unittest import mock

import pytest


VENDOR = Path(__file__).resolve().parent / "_vendor" / "transformers_tests"
if not (VENDOR / "test_modeling_common.py").is_file():
    pytest.skip(
        "transformers' model tests are not fetched: run `python tests/transformers_suite/fetch.py`",
        allow_module_level=True,
    )
pytest.importorskip("parameterized", reason="transformers' model tests need `pip install parameterized`")

import torch  # noqa: E402
from parameterized import parameterized  # noqa: E402
from transformers import LlamaConfig  # noqa: E402
from transformers.models.auto import modeling_auto  # noqa: E402
from transformers.testing_utils import torch_device  # noqa: E402
from transformers.utils import ModelOutput  # noqa: E402
from transformers_tests.generation.test_utils import GenerationTesterMixin  # noqa: E402
from transformers_tests.test_configuration_common import ConfigTester  # noqa: E402
from transformers_tests.test_modeling_common import ModelTesterMixin, floats_tensor, ids_tensor  # noqa: E402

from unicorn_hf import UnicornConfig, UnicornForConditionalGeneration, UnicornModel  # noqa: E402


# A tiny CLIP image tower (what `attach_image_tower` carries), 16-d output to match the tester's `embed_dim`.
TINY_CLIP_VISION = {
    "model_type": "clip_vision_model",
    "image_size": 8,
    "patch_size": 4,
    "hidden_size": 16,
    "projection_dim": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 20,
}
GENERATION_MIXIN_IS_STAND_IN = getattr(GenerationTesterMixin, "UNICORN_STAND_IN", False)


class UnicornModelTester:
    """LLaVA's tester with the image tower replaced by what Unicorn takes: one shifted encoder embedding per prompt."""

    def __init__(
        self,
        parent,
        image_token_id=0,
        embed_dim=16,
        num_image_tokens=4,
        projector_type="mlp2x_gelu",
        seq_length=7,
        is_training=True,
        text_config=None,
    ):
        self.parent = parent
        self.image_token_id = image_token_id
        self.embed_dim = embed_dim
        self.num_image_tokens = num_image_tokens
        self.projector_type = projector_type
        self.text_config = text_config or {
            "model_type": "llama",
            "vocab_size": 99,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 37,
            "hidden_act": "silu",
            "max_position_embeddings": 512,
            "initializer_range": 0.02,
            "pad_token_id": 1,
            "bos_token_id": 2,
            "eos_token_id": 3,
        }
        self.pad_token_id = self.text_config["pad_token_id"]
        self.num_hidden_layers = self.text_config["num_hidden_layers"]
        self.vocab_size = self.text_config["vocab_size"]
        self.hidden_size = self.text_config["hidden_size"]
        self.num_attention_heads = self.text_config["num_attention_heads"]
        self.is_training = is_training
        self.batch_size = 3
        self.seq_length = seq_length + num_image_tokens
        self.encoder_seq_length = self.seq_length

    def get_config(self):
        text_config = {k: v for k, v in self.text_config.items() if k != "model_type"}
        return UnicornConfig(
            text_config=LlamaConfig(**text_config),
            embed_dim=self.embed_dim,
            projector_type=self.projector_type,
            num_image_tokens=self.num_image_tokens,
            image_token_id=self.image_token_id,
            # No image tower unless a test sets one: the model takes `image_embeds`.
            vision_config=getattr(self, "vision_config", None),
            image_tower_mean="text" if hasattr(self, "vision_config") else None,
        )

    def prepare_config_and_inputs(self):
        image_embeds = floats_tensor([self.batch_size, self.embed_dim])
        return self.get_config(), image_embeds

    def prepare_config_and_inputs_for_common(self):
        config, image_embeds = self.prepare_config_and_inputs()
        input_ids = ids_tensor([self.batch_size, self.seq_length], config.text_config.vocab_size - 1) + 1
        attention_mask = input_ids.ne(1).to(torch_device)
        input_ids[input_ids == config.image_token_id] = self.pad_token_id
        input_ids[:, : self.num_image_tokens] = config.image_token_id
        inputs_dict = {"image_embeds": image_embeds, "input_ids": input_ids, "attention_mask": attention_mask}
        return config, inputs_dict


# transformers' model tests decide what a class is (a base model, an image-text-to-text model with a loss, ...) by
# its name in the Auto mappings' name tables, which only list models inside transformers. Unicorn registers its
# classes with the Auto classes at import instead, so the tests see them listed here, as LLaVA's classes are listed.
AUTO_NAME_TABLES = {
    "MODEL_MAPPING_NAMES": "UnicornModel",
    "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES": "UnicornForConditionalGeneration",
}


class UnicornForConditionalGenerationModelTest(ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    """Model tester for `UnicornModel` and `UnicornForConditionalGeneration`."""

    all_model_classes = (UnicornModel, UnicornForConditionalGeneration)
    pipeline_model_mapping = {"image-text-to-text": UnicornForConditionalGeneration}
    _is_composite = True
    # The mixin runs this check only for models whose configuration file has a copyright year >= 2023 (ours has no
    # such header) unless asked: every weight and buffer must be set by `_init_weights`.
    test_can_init_all_missing_weights_before_2023 = True
    _torch_compile_train_cls = UnicornForConditionalGeneration  # test_torch_compile_for_training (GPU, RUN_SLOW=1)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for table, class_name in AUTO_NAME_TABLES.items():
            patcher = mock.patch.dict(getattr(modeling_auto, table), {UnicornConfig.model_type: class_name})
            patcher.start()
            cls.addClassCleanup(patcher.stop)

    def setUp(self):
        self.model_tester = UnicornModelTester(self)
        self.config_tester = ConfigTester(
            self,
            config_class=UnicornConfig,
            has_text_modality=False,
            common_properties=["image_token_id", "num_image_tokens", "embed_dim"],
        )

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_reverse_loading_mapping(self, check_keys_were_modified=True):
        """As for LLaVA: the renamings are written for the model with its head (`UnicornModel` saved alone keeps its
        own keys), and with an image tower in the config so that the `vision_tower` renaming has keys to rename."""
        self.model_tester.vision_config = TINY_CLIP_VISION
        super().test_reverse_loading_mapping(check_keys_were_modified, skip_base_model=True)

    @parameterized.expand([True, False, None])
    def test_get_image_features_output(self, return_dict):
        """The mixin's version reads the batch size from `pixel_values`; the same checks with `image_embeds`, plus the
        shapes: `last_hidden_state` [B, 1, H] (the projected vector), `pooler_output` [B, num_image_tokens, H]."""
        config, inputs_dict = self._image_features_prepare_config_and_inputs()
        self.assertEqual(set(inputs_dict), {"image_embeds"})
        if return_dict is not None:
            config.return_dict = return_dict
        batch_size, hidden_size = self.model_tester.batch_size, config.text_config.hidden_size
        for model_class in self.all_model_classes:
            model = model_class(config).eval().to(torch_device)
            with torch.no_grad():
                outputs = model.get_image_features(**inputs_dict)
            if return_dict is False:
                self.assertIsInstance(outputs, tuple)
                continue
            self.assertIsInstance(outputs, ModelOutput)
            self.assertEqual(tuple(outputs.last_hidden_state.shape), (batch_size, 1, hidden_size))
            self.assertEqual(
                tuple(outputs.pooler_output.shape), (batch_size, self.model_tester.num_image_tokens, hidden_size)
            )

    @unittest.skip(
        reason="Unicorn's image input is an already encoded embedding and its projector is an MLP: there are no "
        "image-encoder layers whose hidden states get_image_features could return"
    )
    def test_get_image_features_hidden_states(self):
        pass

    @unittest.skip(
        reason="Unicorn's image input is an already encoded embedding and its projector is an MLP: there are no "
        "image-encoder attentions get_image_features could return"
    )
    def test_get_image_features_attentions(self):
        pass

    @unittest.skipIf(
        not GENERATION_MIXIN_IS_STAND_IN, reason="transformers' GenerationTesterMixin is vendored and runs"
    )
    def test_generation_tester_mixin_is_vendored(self):
        self.skipTest(
            "transformers' tests/generation/test_utils.py is not vendored (not in the PyPI sdist, and GitHub was "
            "not reachable when fetch.py ran): GenerationTesterMixin is a stand-in and no generation test ran"
        )
