"""Put transformers' own model-test sources, at the installed transformers version, under `_vendor/` (git-ignored).

    python tests/transformers_suite/fetch.py                 # the installed version
    python tests/transformers_suite/fetch.py --sdist FILE    # from a transformers-<version>.tar.gz already here

Where each file comes from (all Apache-2.0, copied byte for byte, license header kept):

- `tests/test_modeling_common.py` (`ModelTesterMixin`) and `tests/test_configuration_common.py` (`ConfigTester`):
  the transformers source distribution on PyPI (`pip download transformers==<version> --no-binary :all:`).
- `tests/generation/test_utils.py` (`GenerationTesterMixin`), `tests/exporters/test_export.py` (`ExportTesterMixin`)
  and `tests/utils/test_configuration_utils.py` are not in that sdist: they come from
  https://raw.githubusercontent.com/huggingface/transformers/v<version>/tests/..., with the files they import.
  Where GitHub cannot be reached a small stand-in is written instead, marked `UNICORN_STAND_IN = True`; the suite
  then says which mixin did not run (see README.md).

`_vendor/SOURCES.json` records the origin and sha256 of every file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path


HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "_vendor" / "transformers_tests"  # transformers' `tests/` folder, renamed so it is not `tests`
FROM_SDIST = ("test_modeling_common.py", "test_configuration_common.py")
FROM_GITHUB = ("generation/test_utils.py", "exporters/test_export.py", "utils/test_configuration_utils.py")
RAW_URL = "https://raw.githubusercontent.com/huggingface/transformers/v{version}/tests/{path}"
RELATIVE_IMPORT = re.compile(r"^\s*from (\.+)([\w.]+) import", re.MULTILINE)

# Written only where the GitHub file cannot be had. Each keeps `ModelTesterMixin` importable and says what is missing.
STAND_INS = {
    "generation/test_utils.py": '''\
"""STAND-IN written by tests/transformers_suite/fetch.py: transformers' tests/generation/test_utils.py could not be
downloaded, so `GenerationTesterMixin` here has no tests. Not transformers' file."""

UNICORN_STAND_IN = True


class GenerationTesterMixin:
    UNICORN_STAND_IN = True
''',
    "exporters/test_export.py": '''\
"""STAND-IN written by tests/transformers_suite/fetch.py: transformers' tests/exporters/test_export.py could not be
downloaded, so `ExportTesterMixin` here has no tests. Not transformers' file."""

UNICORN_STAND_IN = True


class ExportTesterMixin:
    UNICORN_STAND_IN = True
''',
    "utils/test_configuration_utils.py": '''\
"""STAND-IN written by tests/transformers_suite/fetch.py: transformers' tests/utils/test_configuration_utils.py could
not be downloaded. `config_common_kwargs` here are general `PreTrainedConfig` arguments set to non-default values,
which is what `ConfigTester.check_config_arguments_init` needs (it returns early for composite configs such as
Unicorn's anyway). Not transformers' file."""

UNICORN_STAND_IN = True

config_common_kwargs = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "tie_word_embeddings": False,
    "is_encoder_decoder": True,
    "architectures": ["BertModel"],
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
    "bos_token_id": 2,
    "pad_token_id": 3,
    "eos_token_id": 4,
    "sep_token_id": 5,
    "decoder_start_token_id": 6,
}
''',
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download_sdist(version: str, folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", f"transformers=={version}", "--no-binary", ":all:", "--no-deps",
         "--no-build-isolation", "-q", "-d", str(folder)],
        check=True,
    )  # fmt: skip
    return next(folder.glob(f"transformers-{version}.tar.gz"))


def fetch_github(version: str, path: str) -> bytes | None:
    try:
        with urllib.request.urlopen(RAW_URL.format(version=version, path=path), timeout=30) as response:
            return response.read()
    except OSError as error:
        print(f"  {path}: not downloaded ({error})", file=sys.stderr)
        return None


def relative_imports(path: str, source: str) -> list[str]:
    """The files under `tests/` that `from .x import` / `from ..x.y import` lines of `path` name."""
    found = []
    for dots, module in RELATIVE_IMPORT.findall(source):
        package = Path(path).parent
        for _ in range(len(dots) - 1):
            package = package.parent
        found.append((package / Path(*module.split("."))).with_suffix(".py").as_posix())
    return found


def main() -> None:
    import transformers

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", default=transformers.__version__)
    parser.add_argument("--sdist", type=Path, help="a transformers-<version>.tar.gz to read instead of downloading it")
    args = parser.parse_args()
    if args.version != transformers.__version__:
        print(f"warning: fetching {args.version}, but transformers {transformers.__version__} is installed")

    shutil.rmtree(PACKAGE.parent, ignore_errors=True)
    PACKAGE.mkdir(parents=True)
    sources = {"transformers_version": args.version, "files": {}}
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or download_sdist(args.version, Path(tmp))
        with tarfile.open(sdist) as archive:
            for name in FROM_SDIST:
                member = archive.getmember(f"transformers-{args.version}/tests/{name}")
                (PACKAGE / name).write_bytes(archive.extractfile(member).read())
                sources["files"][name] = {"origin": f"PyPI sdist {Path(sdist).name}"}
    pending = list(FROM_GITHUB)
    while pending:  # the GitHub files, then whatever they import from `tests/` that is not here yet
        path = pending.pop(0)
        target = PACKAGE / path
        if path in sources["files"]:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        content = fetch_github(args.version, path)
        if content is None:
            if path not in STAND_INS:
                raise SystemExit(f"{path} (imported by a fetched file) could not be downloaded")
            target.write_text(STAND_INS[path])
            sources["files"][path] = {"origin": "STAND-IN (GitHub not reachable)"}
            continue
        target.write_bytes(content)
        sources["files"][path] = {"origin": RAW_URL.format(version=args.version, path=path)}
        pending += [name for name in relative_imports(path, content.decode()) if not (PACKAGE / name).exists()]
    for folder in [PACKAGE, *(p for p in PACKAGE.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    for name, record in sources["files"].items():
        record["sha256"] = sha256(PACKAGE / name)
    (PACKAGE.parent / "SOURCES.json").write_text(json.dumps(sources, indent=2) + "\n")
    for name, record in sources["files"].items():
        print(f"{name}: {record['origin']}")


if __name__ == "__main__":
    main()
