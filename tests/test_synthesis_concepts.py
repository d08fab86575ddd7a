"""The concept bank (`pkg://imagenet21k`): timm's ImageNet-21k synset files -> labels -> stage-1 seeds and a memory."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from unicorn_hf.synthesis import concept_texts as texts_module
from unicorn_hf.synthesis import concepts
from unicorn_hf.synthesis.concept_texts import concept_texts
from unicorn_hf.synthesis.concepts import GLOSS_FILE, LEMMA_FILE, concept_label, imagenet21k_concepts
from unicorn_hf.synthesis.config import SeedArguments, SeedSourceConfig
from unicorn_hf.synthesis.seeds import label_seeds, load_seeds, load_templates


RECIPES = Path(__file__).resolve().parents[1] / "recipes"
CRANE_BIRD, CRANE_MACHINE = "n02012849", "n03126707"  # read from timm's files: two synsets named "crane"
CRANE_BIRD_GLOSS = "large long-necked wading bird of marshes and plains in many parts of the world"


def _bank_source(**kwargs) -> dict:
    source = {"name": "imagenet21k", "kind": "labels", "path": "pkg://imagenet21k", "label_format": "lemma_gloss",
              "templates": "pkg://clip-openai", "templates_per_label": 10, "template_seed": 0}  # fmt: skip
    return {**source, **kwargs}


@pytest.fixture(scope="module")
def bank():
    return imagenet21k_concepts()


def test_timm_files_load_every_synset_with_lemmas_and_gloss(bank):
    bank_concepts, drops = bank
    assert len(bank_concepts) == 21844  # timm 1.0.31: 21,843 ImageNet-21k (fall 2011) synsets + n04399382
    assert drops.rows_in == 2 * 21844 and drops.rows_dropped == 0, drops.summary()
    by_id = {concept.synset: concept for concept in bank_concepts}
    assert len(by_id) == len(bank_concepts)
    assert all(re.fullmatch(r"n\d{8}", synset) for synset in by_id)
    assert all(concept.name and concept.gloss for concept in bank_concepts)
    dog = by_id["n02084071"]
    assert dog.lemmas == ("dog", "domestic dog", "Canis familiaris") and dog.name == "dog"
    assert dog.gloss.startswith("a member of the genus Canis (probably descended from the common wolf)")
    bird, machine = by_id[CRANE_BIRD], by_id[CRANE_MACHINE]
    assert concept_label(bird, "lemma") == concept_label(machine, "lemma") == "crane"
    assert concept_label(bird, "lemma_gloss") == f"crane, {CRANE_BIRD_GLOSS}"
    assert concept_label(machine, "lemma_gloss").startswith("crane, lifts and moves heavy objects")
    with pytest.raises(ValueError, match="label_format 'gloss'"):
        concept_label(bird, "gloss")


def test_a_known_synset_renders_with_the_clip_templates():
    templates = load_templates("pkg://clip-openai")
    seeds, drops = load_seeds(SeedArguments(seed_sources=[_bank_source()]))
    bird = [row for row in seeds if row["id"].startswith(f"imagenet21k-{CRANE_BIRD}-")]
    assert len(bird) == 10  # the paper's 10 templates per label
    label = f"crane, {CRANE_BIRD_GLOSS}"
    assert all(row["seed"] in {template.replace("{label}", label) for template in templates} for row in bird)
    assert len({row["seed"] for row in bird}) == 10 and {row["seed_source"] for row in bird} == {"imagenet21k"}
    # 21,844 x 10 rendered; the only repeats: two "gutta-percha tree" synsets share lemma and gloss
    assert drops.rows_in == 218440 and dict(drops.dropped) == {"seed_duplicate": 2}
    by_synset = Counter(row["id"].split("-")[1] for row in seeds)
    assert len(by_synset) == 21844 and max(by_synset.values()) == 10


def test_max_seeds_and_templates_per_label_as_for_imagenet():
    source = _bank_source(templates_per_label=3, max_seeds=50)
    seeds, drops = load_seeds(SeedArguments(seed_sources=[source]))
    assert len(seeds) == 50
    assert drops.rows_in == 3 * 21844 and drops.dropped["seed_not_sampled"] == 3 * 21844 - 50
    synsets = Counter(row["id"].split("-")[1] for row in seeds)
    assert max(synsets.values()) <= 3 and len(synsets) > 40  # a hash-ordered sample spread over the bank
    assert [row["id"] for row in load_seeds(SeedArguments(seed_sources=[source]))[0]] == [row["id"] for row in seeds]
    # templates_per_label caps at the number of templates, as for pkg://imagenet
    many = SeedSourceConfig(**_bank_source(templates="pkg://clip-simple", templates_per_label=1000))
    assert len(list(label_seeds(many))) == 21844 * len(load_templates("pkg://clip-simple"))


def _write_bank(folder: Path, lemma_lines: list[str], gloss_lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LEMMA_FILE).write_text("\n".join(lemma_lines) + "\n")
    (folder / GLOSS_FILE).write_text("\n".join(gloss_lines) + "\n")
    return folder


LEMMAS = ["n02012849\tcrane", "n03126707\tcrane", "n02084071\tdog, domestic dog, Canis familiaris"]
GLOSSES = ["n02012849\ta wading bird", "n03126707\ta lifting machine", "n02084071\ta domesticated canid"]


def _ids(source: dict, *others: dict) -> dict[str, str]:
    seeds, _ = load_seeds(SeedArguments(seed_sources=[*others, source]))
    return {row["seed"]: row["id"] for row in seeds if row["seed_source"] == source["name"]}


def test_seed_ids_come_from_the_synset_not_the_position(tmp_path, monkeypatch):
    folder = _write_bank(tmp_path / "bank", LEMMAS, GLOSSES)
    monkeypatch.setitem(concepts.CONCEPT_BANKS, "pkg://imagenet21k", lambda: imagenet21k_concepts(folder))
    source = _bank_source(templates_per_label=2)
    ids = _ids(source)
    assert len(ids) == 6 and all(re.fullmatch(r"imagenet21k-n\d{8}-[0-9a-f]{16}", seed_id) for seed_id in ids.values())
    assert {seed_id.split("-")[1] for seed_id in ids.values()} == {"n02012849", "n03126707", "n02084071"}
    labels = tmp_path / "labels.txt"
    labels.write_text("pad thai\n")
    other = {"name": "food", "kind": "labels", "path": str(labels), "templates": "pkg://clip-openai",
             "templates_per_label": 1, "template_seed": 0}  # fmt: skip
    assert _ids(source, other) == ids  # another source listed first
    _write_bank(folder, LEMMAS[::-1], GLOSSES[::-1])
    assert _ids(source) == ids  # the bank's lines in another order
    # A concept draws the same templates in either label_format (the draw is keyed by the synset id).
    by_format = {}
    for label_format in ("lemma", "lemma_gloss"):
        seeds, _ = load_seeds(
            SeedArguments(seed_sources=[_bank_source(templates_per_label=2, label_format=label_format)])
        )
        by_format[label_format] = sorted(row["seed"] for row in seeds if "-n02084071-" in row["id"])
    assert by_format["lemma_gloss"] == sorted(
        s.replace("dog", "dog, a domesticated canid", 1) for s in by_format["lemma"]
    )


def test_missing_or_garbled_files_are_errors_naming_the_file(tmp_path, monkeypatch):
    only_lemmas = tmp_path / "only_lemmas"
    only_lemmas.mkdir()
    (only_lemmas / LEMMA_FILE).write_text(LEMMAS[0] + "\n")
    with pytest.raises(FileNotFoundError, match=rf"{GLOSS_FILE} is missing"):
        imagenet21k_concepts(only_lemmas)
    binary = _write_bank(tmp_path / "binary", LEMMAS, GLOSSES)
    (binary / LEMMA_FILE).write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ValueError, match=rf"{LEMMA_FILE} is not UTF-8 text"):
        imagenet21k_concepts(binary)
    garbled = _write_bank(tmp_path / "garbled", LEMMAS, ["crane: a wading bird", "n0201\tdog"])
    with pytest.raises(ValueError, match=rf"{GLOSS_FILE} has no valid line: expected `<synset id"):
        imagenet21k_concepts(garbled)
    find_spec = concepts.importlib.util.find_spec
    monkeypatch.setattr(
        concepts.importlib.util, "find_spec", lambda name, *a: None if name == "timm" else find_spec(name, *a)
    )
    with pytest.raises(ImportError, match="`timm` is needed for the concept bank"):
        imagenet21k_concepts()


def test_bad_lines_are_counted_not_dropped_silently(tmp_path, monkeypatch):
    lemma_lines = [*LEMMAS, "n01440764 tench", "n02084071\tdog again", "n09999999\torphan", "n01234567\ta, , b"]
    gloss_lines = [*GLOSSES, "n01234567\tempty name", "n08888888\tgloss only"]
    folder = _write_bank(tmp_path / "bank", lemma_lines, gloss_lines)
    bank_concepts, drops = imagenet21k_concepts(folder)
    assert [concept.synset for concept in bank_concepts] == ["n02012849", "n03126707", "n02084071"]
    assert dict(drops.dropped) == {
        "concept_malformed_line": 2, "concept_duplicate_synset": 1, "concept_lemma_without_gloss": 1,
        "concept_gloss_without_lemma": 2,
    }  # fmt: skip
    assert drops.examples["concept_malformed_line"] == [f"{LEMMA_FILE}:4", f"{LEMMA_FILE}:7"]
    assert drops.examples["concept_duplicate_synset"] == [f"{LEMMA_FILE}:5 (first at {LEMMA_FILE}:3)"]
    assert drops.rows_in == 12 and drops.rows_out == 2 * len(bank_concepts)
    # The same counts reach stage 1's drop log (and so drops.json and the dataset card).
    monkeypatch.setitem(concepts.CONCEPT_BANKS, "pkg://imagenet21k", lambda: imagenet21k_concepts(folder))
    seeds, seed_drops = load_seeds(SeedArguments(seed_sources=[_bank_source(templates_per_label=1)]))
    assert len(seeds) == 3 and seed_drops.rows_out == 3
    assert {reason: n for reason, n in seed_drops.dropped.items() if reason.startswith("concept_")} == drops.dropped


def test_label_format_is_a_required_setting_of_concept_banks_only():
    with pytest.raises(ValueError, match=r"label_format` one of \['lemma', 'lemma_gloss'\].*None"):
        SeedSourceConfig(**_bank_source(label_format=None))
    with pytest.raises(ValueError, match="label_format 'gloss'"):
        SeedSourceConfig(**_bank_source(label_format="gloss"))
    with pytest.raises(ValueError, match="`label_format` is for concept banks"):
        SeedSourceConfig(**_bank_source(path="pkg://imagenet"))


def test_memory_export_one_text_per_line(tmp_path, bank):
    bank_concepts, _ = bank
    output = tmp_path / "memory" / "concepts.txt"
    written = texts_module.main(["--output", str(output), "--label_format", "lemma_gloss"])
    lines = output.read_text(encoding="utf-8").splitlines()
    assert written == len(lines) == 21843  # 21,844 labels, the two "gutta-percha tree" synsets written once
    assert f"crane, {CRANE_BIRD_GLOSS}" in lines and all(line == line.strip() and line for line in lines)
    assert texts_module.write_concept_texts(output, concept_texts("lemma")) == len({c.name for c in bank_concepts})
    # With templates, the memory holds exactly the stage-1 seed texts of the same settings.
    texts_module.main(["--output", str(output), "--label_format", "lemma_gloss", "--templates", "pkg://clip-openai",
                   "--templates_per_label", "1", "--template_seed", "0"])  # fmt: skip
    seeds, _ = load_seeds(SeedArguments(seed_sources=[_bank_source(templates_per_label=1)]))
    assert output.read_text(encoding="utf-8").splitlines() == [row["seed"] for row in seeds]
    with pytest.raises(ValueError, match="need `templates`"):
        list(concept_texts("lemma", templates_per_label=1))


def test_the_paper_recipe_documents_a_concept_source_that_parses():
    text = (RECIPES / "unicorn-8b" / "captions.yaml").read_text()
    block = re.search(r"^  # - name: imagenet21k\n(?:  #   .*\n)+", text, flags=re.MULTILINE)
    assert block, "the commented imagenet21k seed source is gone from recipes/unicorn-8b/captions.yaml"
    source = yaml.safe_load(re.sub(r"^  # ", "", block.group(0), flags=re.MULTILINE))[0]
    parsed = SeedSourceConfig(**source)
    assert (parsed.path, parsed.label_format, parsed.templates_per_label) == ("pkg://imagenet21k", "lemma_gloss", 10)
    active = yaml.safe_load(text)["seed_sources"]
    assert "pkg://imagenet21k" not in [entry["path"] for entry in active]  # optional: the paper recipe is unchanged
