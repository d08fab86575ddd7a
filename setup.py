"""Build hook for what setup.cfg cannot say: the folders a checkout keeps beside the package (recipe scripts and
YAMLs, accelerate configs, card templates) travel inside the wheel as `unicorn_hf/_<folder>`, so that a plain
`pip install .` runs the quickstart and `--update_model_card` (found at run time by `unicorn_hf.utils.resources`).
Everything else (metadata, dependencies, package data) is in setup.cfg."""

from setuptools import find_packages, setup


# package name inside the wheel -> folder in the checkout
BUNDLED = {
    "unicorn_hf._recipes": "recipes",
    "unicorn_hf._accelerate_configs": "accelerate_configs",
    "unicorn_hf._model_cards": "model_cards",
}
# Package data, all in one place (setup() keywords override setup.cfg's, so none is declared there). Recipe folders
# are data, not packages: each pattern is relative to the bundled folder.
PACKAGE_DATA = {
    "unicorn_hf": ["synthesis/prompts/*.txt", "evaluation/metrics/*/*.py", "encoders/model_configs/*.json"],
    "unicorn_hf._recipes": [
        "*.py",
        "*/*.yaml",
        "*/*.jsonl",
        "*/*.md",
        "*/*/*.yaml",
        "*/*/*.py",
        "*/*/*.md",
        "*/*/*/*.yaml",  # experiments/<name>/<budget>/ (e.g. does_it_see/gpu/)
        "*/*/results/*/*",  # experiments/<name>/results/<run>/: what a recorded run wrote (scores, logs, YAMLs)
    ],
    "unicorn_hf._accelerate_configs": ["*.yaml"],
    "unicorn_hf._model_cards": ["*.md"],
}

setup(
    packages=[*find_packages(include=["unicorn_hf", "unicorn_hf.*"]), *BUNDLED],
    package_dir=BUNDLED,
    package_data=PACKAGE_DATA,
)
