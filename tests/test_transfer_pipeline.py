"""Stage 3 end to end on tiny datasets in the stage-1/2 schema: output layout, dtype, drops, resume, refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from datasets import Dataset, List, Value, load_dataset

from unicorn_hf import encoders as encoders_module
from unicorn_hf.encoders import load_encoder
from unicorn_hf.modeling.modality_transfer import TransferSettings
from unicorn_hf.transfer import encoding, pipeline, writing
from unicorn_hf.transfer.config import EncoderArguments, TransferArguments
from unicorn_hf.transfer.statistics import TransferStatistics
from unicorn_hf.utils.hub import configs_metadata, write_card, write_dataset_config


TINY = "unicorn-tiny-clip"  # random-init tiny open_clip architecture shipped in unicorn_hf/encoders/model_configs
DIM = 64
LONG_CAPTION = " ".join(["a long detailed caption about a red bicycle leaning on a wall"] * 12)  # >> 77 tokens


def _write(folder: Path, config: str, rows: dict) -> Path:
    write_dataset_config(Dataset.from_dict(rows), folder, config)
    write_card(folder, {"configs": configs_metadata([config])}, f"# tiny {config}")
    return folder


@pytest.fixture
def inputs(tmp_path) -> tuple[Path, Path]:
    """22 captions (one empty, one long, one duplicate id) and 8 dialogues (one orphan, one with another caption)."""
    captions = [f"a photo of object number {i} on a wooden table" for i in range(19)] + [LONG_CAPTION, "", "dup"]
    ids = [f"c{i:03d}" for i in range(21)] + ["c001"]  # the last row repeats id c001
    captions_dir = _write(
        tmp_path / "captions",
        "captions",
        {
            "id": ids,
            "seed": [f"seed {i}" for i in range(22)],
            "seed_source": ["open"] * 22,
            "caption": captions,
            "model_name": ["tiny-llm"] * 22,
        },
    )
    inst_ids = ["c000", "c003", "c019", "c007", "missing", "c010", "c011", "c003"]
    inst_captions = [captions[int(i[1:])] if i != "missing" else "x" for i in inst_ids]
    inst_captions[6] = "a caption that differs from the one with this id"
    messages = [[{"role": "user", "content": "<image>\nWhat is it?"}, {"role": "assistant", "content": "A."}]] * 8
    instructions_dir = _write(
        tmp_path / "instructions",
        "instructions",
        {
            "id": inst_ids,
            "task": ["qa", "mc", "reasoning", "qa", "qa", "mc", "qa", "qa"],
            "caption": inst_captions,
            "messages": messages,
            "model_name": ["tiny-llm"] * 8,
        },
    )
    return captions_dir, instructions_dir


def _args(inputs, tmp_path, **overrides) -> tuple[EncoderArguments, TransferArguments]:
    encoder_args = EncoderArguments(
        encoder=TINY, pretrained=None, encoder_device="cpu", encoder_dtype="float32", encoder_batch_size=4, init_seed=0
    )
    transfer_args = TransferArguments(
        captions_path=str(inputs[0]),
        instructions_path=str(inputs[1]),
        output_dir=str(tmp_path / "transfer"),
        shard_size=5,
        method="mean_shift",
        renormalize=True,
        diagnostics=False,
    )
    return encoder_args, replace(transfer_args, **overrides)


def _load(folder: Path, config: str) -> Dataset:
    # A cache per output folder: datasets keys a folder's cache on its name and card, not on its files.
    return load_dataset(str(folder), config, split="train", cache_dir=str(folder.parent / f".cache-{folder.name}"))


def _embeds(folder: Path, config: str) -> tuple[list[str], torch.Tensor]:
    ds = _load(folder, config)
    column = ds.with_format("arrow")["image_embeds"].combine_chunks()  # fixed_size_list<halffloat>[D]
    embeds = torch.from_numpy(column.flatten().to_numpy().reshape(len(ds), column.type.list_size).copy())
    assert embeds.dtype == torch.float16
    return ds["id"], embeds


def test_transfer_writes_hub_folder_with_float16_embeds(inputs, tmp_path, planted_token):
    encoder_args, args = _args(inputs, tmp_path, diagnostics=True)
    out = pipeline.run_transfer(encoder_args, args)

    captions = _load(out, "captions")
    assert captions.features["image_embeds"] == List(Value("float16"), length=DIM)
    assert captions.column_names == ["id", "seed", "seed_source", "caption", "model_name", "image_embeds"]
    assert len(captions) == 20  # 22 - empty caption - duplicate id
    instructions = _load(out, "instructions")
    assert instructions.features["image_embeds"] == List(Value("float16"), length=DIM)
    assert instructions["id"] == ["c000", "c003", "c019", "c007", "c010", "c003"]
    assert instructions.features["messages"] == List({"role": Value("string"), "content": Value("string")})

    # The stored vectors are exactly the statistics' rule applied to a fresh encoding, rounded to float16.
    stats = TransferStatistics.load(out)
    encoder = load_encoder(TINY, device="cpu", dtype="float32", batch_size=4, init_seed=0)
    assert stats.encoder_id == encoder.id and stats.dim == DIM and stats.num_rows == 20
    expected = stats.embed_text(encoder.encode_text(captions["caption"])).half()
    _, stored = _embeds(out, "captions")
    torch.testing.assert_close(stored, expected, atol=2e-3, rtol=0)
    assert torch.allclose(stats.text_mean, encoder.encode_text(captions["caption"]).mean(0), atol=1e-6)
    # An instruction row carries the embedding of the caption it was made from.
    by_id = dict(zip(*_embeds(out, "captions"), strict=True))
    inst_ids, inst_embeds = _embeds(out, "instructions")
    for row_id, vector in zip(inst_ids, inst_embeds, strict=True):
        assert torch.equal(vector, by_id[row_id])

    drops = json.loads((out / "drops.json").read_text())
    assert drops["captions"]["dropped"] == {"duplicate_id": 1, "empty_caption": 1}
    assert drops["captions"]["rows_out"] == 20
    assert drops["instructions"]["dropped"] == {"caption_id_missing": 1, "caption_mismatch": 1}
    assert drops["instructions"]["examples"]["caption_id_missing"] == ["missing"]

    card = (out / "README.md").read_text()
    assert "config_name: captions" in card and "config_name: instructions" in card
    assert "1 of 20 (5.0%)" in card  # the one long caption is truncated by the 77-token context
    assert "random weights" in card and "recall@1" in card
    assert (out / "modality_gap.png").stat().st_size > 10_000
    report = json.loads((out / "modality_gap.json").read_text())
    assert report["num_pairs"] == 16
    assert set(report["before"]) == {
        "centroid_gap",
        "matched_cosine",
        "recall@1",
        "recall@5",
        "image_to_text_recall@1",
    }
    assert not (out / encoding.WORK_DIR).exists()
    planted_token.assert_absent(out)  # no file the stage writes (and --push_to_hub would upload) holds HF_TOKEN


def test_resume_after_a_killed_run_is_identical_and_skips_finished_shards(inputs, tmp_path, monkeypatch):
    encoder_args, args = _args(inputs, tmp_path / "reference")
    reference = pipeline.run_transfer(encoder_args, args)

    encoder_args, args = _args(inputs, tmp_path / "resumed")
    calls = []
    original = encoders_module.PairedEncoder.encode_text_and_count

    def dying_encode_text(self, texts):
        calls.append(len(texts))
        if len(calls) == 3:  # the third caption shard: two shards are finished when the run dies
            raise KeyboardInterrupt("killed")
        return original(self, texts)

    monkeypatch.setattr(encoders_module.PairedEncoder, "encode_text_and_count", dying_encode_text)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_transfer(encoder_args, args)
    out = Path(args.output_dir)
    assert len(list((out / encoding.WORK_DIR).glob("captions-u-*.safetensors"))) == 2
    assert not TransferStatistics.exists(out)

    def counting_encode_text(self, texts):
        calls.append(len(texts))
        return original(self, texts)

    calls.clear()
    monkeypatch.setattr(encoders_module.PairedEncoder, "encode_text_and_count", counting_encode_text)
    pipeline.run_transfer(encoder_args, args)
    # Only shards 2 and 3 are encoded again; shard 4 holds the empty caption and the duplicate id, nothing to encode.
    assert calls == [5, 5]

    for config in ("captions", "instructions"):
        ids_a, embeds_a = _embeds(reference, config)
        ids_b, embeds_b = _embeds(out, config)
        assert ids_a == ids_b and torch.equal(embeds_a, embeds_b)
    assert json.loads((out / "drops.json").read_text()) == json.loads((reference / "drops.json").read_text())
    assert torch.equal(TransferStatistics.load(out).text_mean, TransferStatistics.load(reference).text_mean)

    calls.clear()  # a finished run is not redone
    pipeline.run_transfer(encoder_args, args)
    assert calls == []


METHODS = {
    "none": {"method": "none", "renormalize": None},
    "mean_shift": {"method": "mean_shift", "renormalize": False},
    "capdec": {"method": "capdec", "renormalize": None, "noise_std": 0.126},
    "c3": {"method": "c3", "renormalize": None, "noise_std": 0.126},
    "realign": {"method": "realign", "renormalize": None},
    "memory_projection": {"method": "memory_projection", "renormalize": None},
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_stores_its_text_side_and_the_statistics_it_needs(inputs, tmp_path, method):
    """The stage writes each method's text side (no noise) and what its image side needs; the card's diagnostics
    list every method."""
    from unicorn_hf.utils.assets import photographs

    images = tmp_path / "unlabeled"
    images.mkdir()
    for photo, image in photographs()[:4]:
        image.save(images / f"{photo.name}.png")
    memory = {"memory_size": 8, "memory_source": "captions", "memory_temperature": 0.01, "seed": 0}
    encoder_args, args = _args(inputs, tmp_path, image_mean_source=str(images), diagnostics=True, **memory,
                               **METHODS[method])  # fmt: skip
    out = pipeline.run_transfer(encoder_args, args)
    stats = TransferStatistics.load(out)
    assert stats.method == method and stats.memory.shape == (8, DIM) and stats.num_images == 4
    encoder = load_encoder(TINY, device="cpu", dtype="float32", batch_size=4, init_seed=0)
    _, stored = _embeds(out, "captions")
    expected = stats.embed_text(encoder.encode_text(_load(out, "captions")["caption"])).half()
    torch.testing.assert_close(stored, expected, atol=2e-3, rtol=0)
    if method in ("capdec", "c3", "realign", "memory_projection"):  # their text sides end in a re-normalisation
        torch.testing.assert_close(stored.float().norm(dim=-1), torch.ones(len(stored)), atol=2e-3, rtol=0)
    report = json.loads((out / "modality_gap.json").read_text())
    assert report["method"] == method and set(report["methods"]) >= {"none", "capdec", "c3", "realign"}
    assert f"method: {method}" in (out / "README.md").read_text()


def test_resume_after_a_run_killed_while_writing(inputs, tmp_path, monkeypatch):
    # A memory is a seeded subsample of the stash: a resumed run must draw the same rows.
    memory = {"memory_size": 7, "memory_source": "captions", "memory_temperature": 0.01, "seed": 3}
    encoder_args, args = _args(inputs, tmp_path / "reference", **memory)
    reference = pipeline.run_transfer(encoder_args, args)

    encoder_args, args = _args(inputs, tmp_path / "resumed", **memory)
    written, original = [], writing._write_shard

    def dying_write_shard(table, embeds, features, path):
        if len(written) == 6:  # all 5 caption shards and the first instruction shard are staged
            raise KeyboardInterrupt("killed")
        written.append(path)
        original(table, embeds, features, path)

    monkeypatch.setattr(writing, "_write_shard", dying_write_shard)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_transfer(encoder_args, args)
    written.clear()
    monkeypatch.setattr(writing, "_write_shard", lambda *a: (written.append(a[-1]), original(*a)))
    out = pipeline.run_transfer(encoder_args, args)
    assert [path.name for path in written] == ["shard-00001.parquet"]  # the one unfinished instruction shard

    for config in ("captions", "instructions"):
        ids_a, embeds_a = _embeds(reference, config)
        ids_b, embeds_b = _embeds(out, config)
        assert ids_a == ids_b and torch.equal(embeds_a, embeds_b)
    assert torch.equal(TransferStatistics.load(out).memory, TransferStatistics.load(reference).memory)
    assert json.loads((out / "drops.json").read_text()) == json.loads((reference / "drops.json").read_text())


def test_non_finite_embeddings_are_dropped_with_a_reason(inputs, tmp_path, monkeypatch):
    original = encoders_module.PairedEncoder.encode_text_and_count

    def nan_for_object_3(self, texts):
        u, truncated = original(self, texts)
        u[[i for i, text in enumerate(texts) if "number 3 " in text]] = float("nan")  # e.g. a float16 overflow
        return u, truncated

    monkeypatch.setattr(encoders_module.PairedEncoder, "encode_text_and_count", nan_for_object_3)
    out = pipeline.run_transfer(*_args(inputs, tmp_path))
    drops = json.loads((out / "drops.json").read_text())
    assert drops["captions"]["dropped"]["non_finite_embedding"] == 1
    assert drops["captions"]["examples"]["non_finite_embedding"] == ["c003"]
    assert drops["instructions"]["dropped"]["caption_id_missing"] == 3  # "missing" + two dialogues made from c003
    stats = TransferStatistics.load(out)
    assert stats.num_rows == 19 and torch.isfinite(stats.text_mean).all()
    ids, embeds = _embeds(out, "captions")
    assert "c003" not in ids and torch.isfinite(embeds).all()


def test_mixing_encoders_or_widths_is_refused(inputs, tmp_path):
    encoder_args, args = _args(inputs, tmp_path)
    out = pipeline.run_transfer(encoder_args, args)
    other_encoder = replace(encoder_args, init_seed=1)  # same architecture, other weights: another encoder id
    with pytest.raises(ValueError, match="refusing to mix in 'open_clip:unicorn-tiny-clip#random-init-seed1'"):
        pipeline.run_transfer(other_encoder, args)
    with pytest.raises(ValueError, match="other arguments"):
        pipeline.run_transfer(encoder_args, replace(args, renormalize=False))

    # A statistics file of another width next to the data (e.g. copied from a 32-d run) is refused too.
    stale = tmp_path / "stale"
    TransferStatistics(
        encoder_id="open_clip:other", dim=32, text_mean=torch.zeros(32), num_rows=1, normalized_input=True,
        settings=TransferSettings(method="mean_shift", renormalize=True),
    ).save(stale)  # fmt: skip
    with pytest.raises(ValueError, match=r"statistics are 32-d but encoder .* gives 64-d"):
        pipeline.run_transfer(encoder_args, replace(args, output_dir=str(stale)))

    # --overwrite replaces the run with the new encoder's.
    pipeline.run_transfer(other_encoder, replace(args, overwrite=True))
    assert TransferStatistics.load(out).encoder_id.endswith("seed1")


def test_recipe_with_image_mean_gives_the_ideal_form(inputs, tmp_path):
    import importlib.util

    from unicorn_hf.utils.assets import photographs

    images = tmp_path / "unlabeled"
    images.mkdir()
    pairs = photographs()[:6]
    for photo, image in pairs:
        image.save(images / f"{photo.name}.png")
    spec = importlib.util.spec_from_file_location("transfer_recipe", Path("recipes/transfer.py"))
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    out = tmp_path / "transfer"
    argv = ["--config", "recipes/tiny/transfer.yaml", "--captions_path", str(inputs[0]), "--instructions_path",
            str(inputs[1]), "--output_dir", str(out), "--image_mean_source", str(images), "--add_image_mean", "true",
            "--diagnostics", "false",
            # the tiny YAML names the trained offline encoder; this test needs only the mechanics
            "--encoder", TINY, "--init_seed", "42"]  # fmt: skip
    recipe.main(*recipe.make_parser().parse_args_and_config(argv))

    stats = TransferStatistics.load(out)
    encoder = load_encoder(TINY, device="cpu", dtype="float32", batch_size=4, init_seed=42)  # as overridden above
    assert stats.encoder_id == encoder.id and stats.num_images == 6 and stats.settings.add_image_mean
    image_mean = encoder.encode_image([image for _, image in pairs]).mean(0)
    torch.testing.assert_close(stats.image_mean, image_mean, atol=1e-5, rtol=0)
    _, stored = _embeds(out, "captions")
    captions = _load(out, "captions")["caption"]
    u = encoder.encode_text(captions)
    expected = torch.nn.functional.normalize(u - stats.text_mean + image_mean, dim=-1)  # u - mu_T + mu_V, renormalised
    torch.testing.assert_close(stored.float(), expected, atol=2e-3, rtol=0)
    assert "v = u - text_mean + image_mean" in (out / "README.md").read_text()
    # The tiny YAML carries a memory of every caption, for memory projection at inference.
    torch.testing.assert_close(stats.memory, torch.nn.functional.normalize(u, dim=-1), atol=1e-5, rtol=0)


def test_the_packaged_image_mean_source_is_photographs_no_evaluation_scores_on():
    """`pkg://unscored-photographs` (the tiny transfer's image_mean_source): real photographs from the wheels, none of
    them an evaluation fixture's."""
    from unicorn_hf.utils.assets import SKIMAGE_PHOTOGRAPHS, UNSCORED_PHOTOGRAPHS, packaged_images

    scored = {photo.name for photo in SKIMAGE_PHOTOGRAPHS} | {"motorcycle_left", "motorcycle_right", "chelsea"}
    assert not {Path(file).stem for _, file in UNSCORED_PHOTOGRAPHS} & scored
    encoder = load_encoder(TINY, device="cpu", dtype="float32", batch_size=4, init_seed=42)
    mean, count = encoding.estimate_image_mean(encoder, "pkg://unscored-photographs", None, None)
    images = packaged_images("pkg://unscored-photographs")
    assert count == len(images) == len(UNSCORED_PHOTOGRAPHS) and all(image.mode == "RGB" for image in images)
    torch.testing.assert_close(mean, encoder.encode_image(images).mean(0), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="Unknown packaged image set"):
        packaged_images("pkg://nope")


def test_sharded_source_recuts_row_groups_across_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from unicorn_hf.transfer.sources import ShardedSource

    folder = tmp_path / "data" / "captions"
    folder.mkdir(parents=True)
    ids = [f"r{i:02d}" for i in range(23)]
    for index, (start, stop) in enumerate([(0, 10), (10, 23)]):  # two files, row groups of 3 rows
        table = pa.table({"id": ids[start:stop], "caption": [f"caption {i}" for i in ids[start:stop]]})
        pq.write_table(table, folder / f"train-{index:05d}-of-00002.parquet", row_group_size=3)
    source = ShardedSource(str(tmp_path / "data"), "captions")
    assert len(source) == 23 and source.column_names == ["id", "caption"]
    shards = list(source.shards(4, ["id"]))
    assert [shard.num_rows for shard in shards] == [4, 4, 4, 4, 4, 3]
    assert [row for shard in shards for row in shard["id"].to_pylist()] == ids
    assert shards[0].column_names == ["id"]


def test_a_second_clone_accepts_the_same_local_encoder_and_nothing_holds_a_path(inputs, tmp_path, monkeypatch):
    """Issue 15: with the encoder as a local open_clip folder, what the stage writes names it by content (and the
    relative path the recipe gave), never by this machine's absolute path; the same folder in another clone, at
    another absolute path, continues the run instead of being refused as "another encoder"."""
    from safetensors.torch import save_file

    tiny = load_encoder(TINY, device="cpu", dtype="float32", batch_size=4, init_seed=0)
    clones = [tmp_path / "clone-a", tmp_path / "clone-b"]
    for clone in clones:
        folder = clone / "outputs" / "encoder"
        folder.mkdir(parents=True)
        model_cfg = json.loads((encoders_module.MODEL_CONFIGS / f"{TINY}.json").read_text())
        (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
        save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()}, folder / "model.safetensors")
    encoder_args, args = _args(inputs, tmp_path, output_dir=str(tmp_path / "transfer"))
    encoder_args = replace(encoder_args, encoder="local-dir:outputs/encoder", init_seed=None)

    monkeypatch.chdir(clones[0])
    out = pipeline.run_transfer(encoder_args, args)
    written = "".join(p.read_text() for p in out.rglob("*") if p.suffix in (".json", ".md"))
    assert str(clones[0]) not in written and str(tmp_path) not in written.replace(str(inputs[0]), "").replace(
        str(inputs[1]), ""
    ).replace(args.output_dir, "")  # only the paths the caller passed as arguments are recorded, as given
    stats = TransferStatistics.load(out)
    assert stats.encoder["location"] == "outputs/encoder" and stats.encoder_id.startswith("open_clip:local-dir@")

    monkeypatch.chdir(clones[1])  # the same encoder, another clone: a finished run is recognised, not refused
    assert pipeline.run_transfer(encoder_args, args) == out
    assert TransferStatistics.load(out).encoder_id == stats.encoder_id
