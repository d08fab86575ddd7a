"""Run every benchmark side by side on this machine and write one report (`make bench`).

    python bench/run_all.py                       # all benchmarks at their small CPU defaults
    python bench/run_all.py --only transfer training --output bench/results/cpu-2core.md

Each benchmark measures its ratios within one run (ours vs the baseline on the same inputs), so the report compares
like with like even on a busy machine; absolute seconds are only indicative. Benchmarks never fail a test run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
BENCHMARKS: dict[str, list[str]] = {
    "synthesis": ["bench/bench_synthesis.py"],
    "generation_batch": ["bench/bench_generation_batch.py"],
    "transfer": ["bench/bench_transfer.py"],
    "training": ["bench/bench_training.py"],
}
PACKAGES = ("torch", "transformers", "trl", "datasets", "distilabel", "open_clip_torch", "peft", "accelerate")


def machine_header() -> str:
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            versions.append(f"{package} (absent)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return "\n".join(
        [
            f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}",
            f"- python {platform.python_version()}; " + ", ".join(versions),
            f"- load average at start: {load:.1f}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=sorted(BENCHMARKS))
    parser.add_argument("--output", default=None, help="Markdown report path (default: only the terminal).")
    args = parser.parse_args()
    sections = [f"# unicorn-hf benchmarks\n\n{machine_header()}\n"]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    for name in args.only:
        command = [sys.executable, *BENCHMARKS[name]]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        body = result.stdout.strip() or "(no output)"
        if result.returncode != 0:
            body += "\n\n" + result.stderr.strip()[-3000:]
        section = f"## {name}: {status}, {seconds:.0f}s\n\n`python {' '.join(BENCHMARKS[name])}`\n\n```\n{body}\n```\n"
        sections.append(section)
        sys.stdout.write(section + "\n")
        sys.stdout.flush()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    busy = " (above the core count: other work shared the machine)" if load > (os.cpu_count() or 1) else ""
    sections[0] += f"- load average at end: {load:.1f}{busy}\n"
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text("\n".join(sections))


if __name__ == "__main__":
    main()
