"""Benchmark-shaped evaluation sets built from real photographs that ship with scikit-image (offline).

Each builder returns rows with the *same columns as the benchmark's Hub copy* (see benchmarks.py), so the offline
path runs the real column mappings, prompts, extraction and scorers: image -> encoder -> shift -> model -> answer
-> score. The questions come from `unicorn_hf.utils.assets.SKIMAGE_PHOTOGRAPHS` (hand-written captions) and from the
hand-picked object names below, chosen by looking at each photograph.

- POPE: "Is there {object} in the image?" for the photo's own object (yes) and for another photo's object (no).
- MME: the same yes/no pair per image, as MME's two questions per image (acc+ needs both right).
- ScienceQA-IMG / MMBench / MMStar: "Which caption describes the image?" with the photo's caption and three other
  photos' captions as options, the correct one placed by a seeded RNG.
"""

from __future__ import annotations

import random
from functools import cache

from unicorn_hf.evaluation.answers import option_letters
from unicorn_hf.utils.assets import SKIMAGE_PHOTOGRAPHS, load_photograph


# What each photograph shows, as a noun phrase for "Is there {object} in the image?".
OBJECTS: dict[str, str] = {
    "astronaut": "an astronaut",
    "camera": "a camera on a tripod",
    "coffee": "a cup of coffee",
    "chelsea": "a cat",
    "rocket": "a rocket",
    "hubble_deep_field": "a galaxy",
    "coins": "a coin",
    "moon": "a crater",
    "retina": "a human eye",
    "immunohistochemistry": "stained tissue",
    "motorcycle": "a motorcycle",
    "brick": "a brick wall",
    "grass": "grass",
    "gravel": "gravel",
    "page": "printed text",
    "cell": "a cell",
}
# Pairs whose objects may both be visible in either photo: never used as each other's negative.
AMBIGUOUS = {frozenset(pair) for pair in (("cell", "immunohistochemistry"), ("moon", "hubble_deep_field"))}
NUM_OPTIONS = 4  # the shape of MMBench / MMStar questions
POPE_QUESTION = "Is there {object} in the image?"
MME_QUESTION = "Is there {object} in this image? Please answer yes or no."
MC_QUESTION = "Which caption describes the image?"


@cache
def _image(name: str):
    return load_photograph(name)


def _names() -> list[str]:
    return [photo.name for photo in SKIMAGE_PHOTOGRAPHS]


def _captions() -> dict[str, str]:
    return {photo.name: photo.caption for photo in SKIMAGE_PHOTOGRAPHS}


def _negative(name: str, rng: random.Random) -> str:
    candidates = [other for other in _names() if other != name and frozenset((name, other)) not in AMBIGUOUS]
    return rng.choice(candidates)


def _mc_options(name: str, rng: random.Random) -> tuple[list[str], int]:
    """NUM_OPTIONS captions: the photo's own and distractors from other photos; returns (options, correct index)."""
    captions = _captions()
    distractors = rng.sample([other for other in _names() if other != name], NUM_OPTIONS - 1)
    options = [captions[other] for other in distractors]
    answer = rng.randrange(NUM_OPTIONS)
    options.insert(answer, captions[name])
    return options, answer


def pope_rows(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for name in _names():
        for answer, target in (("yes", name), ("no", _negative(name, rng))):
            rows.append(
                {
                    "question_id": str(len(rows)),
                    "question": POPE_QUESTION.format(object=OBJECTS[target]),
                    "answer": answer,
                    "image_source": name,
                    "image": _image(name),
                    "category": "random",  # POPE's negative sampling setting: random objects
                }
            )
    return rows


def mme_rows(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for name in _names():
        for answer, target in (("Yes", name), ("No", _negative(name, rng))):
            rows.append(
                {
                    "question_id": f"existence/{name}.png",
                    "question": MME_QUESTION.format(object=OBJECTS[target]),
                    "answer": answer,
                    "image": _image(name),
                    "category": "existence",
                }
            )
    return rows


def scienceqa_rows(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for name in _names():
        options, answer = _mc_options(name, rng)
        rows.append(
            {
                "image": _image(name),
                "question": MC_QUESTION,
                "choices": options,
                "answer": answer,
                "hint": "",
                "subject": "natural science",
            }
        )
    return rows


def mmbench_rows(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for index, name in enumerate(_names()):
        options, answer = _mc_options(name, rng)
        letters = option_letters(NUM_OPTIONS)
        rows.append(
            {
                "index": index,
                "question": MC_QUESTION,
                "hint": None,
                **dict(zip(letters, options, strict=True)),
                "answer": letters[answer],
                "category": "image_scene",
                "image": _image(name),
            }
        )
    return rows


def mmstar_rows(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for index, name in enumerate(_names()):
        options, answer = _mc_options(name, rng)
        letters = option_letters(NUM_OPTIONS)
        inline = ", ".join(f"{letter}: {option}" for letter, option in zip(letters, options, strict=True))
        rows.append(
            {
                "index": index,
                "question": f"{MC_QUESTION}\nOptions: {inline}",
                "answer": letters[answer],
                "category": "coarse perception",
                "image": _image(name),
            }
        )
    return rows


FIXTURES = {
    "pope": pope_rows,
    "mme": mme_rows,
    "scienceqa_img": scienceqa_rows,
    "mmbench": mmbench_rows,
    "mmstar": mmstar_rows,
}


def build_fixture(name: str, seed: int) -> list[dict]:
    """Rows of the fixture for benchmark `name`, in that benchmark's Hub column layout."""
    if name not in FIXTURES:
        raise ValueError(f"No offline fixture for {name!r}; available: {sorted(FIXTURES)}")
    missing = set(_names()) - set(OBJECTS)
    if missing:
        raise RuntimeError(f"OBJECTS lacks an object name for photograph(s) {sorted(missing)}")
    return FIXTURES[name](seed)


__all__ = ["FIXTURES", "OBJECTS", "build_fixture"]
