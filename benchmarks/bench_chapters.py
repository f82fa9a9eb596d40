"""The book's chapter phase: chapters one at a time (``book --chapter-jobs 1``) against several at once.

A copy of the book (``_toc.yml``, ``_config.yml``, the bibliography, ``book/*.py``) is built once in a scratch
folder with its own run store, corpus cache and figures, so that every run the chapters need is trained. Then the
chapters alone are executed again and again (their executed notebooks and the mechanisms page's variant notebooks
deleted before each build, the runs kept), alternating ``--chapter-jobs 1`` and ``--chapter-jobs N`` so that drift
of the machine's load hits both alike. Reported: the seconds of each ``book`` command, the median of each layout,
their ratio (one at a time / at once: > 1 means several at once is faster), and the per-chapter seconds of the
last build of each layout (from the build's summary table). One at a time, the chapters' kernels keep the caller's
threads (torch's default, one per core, unless ``OMP_NUM_THREADS`` is set): the behaviour before chapters executed
at once. Nothing of the user's checkout is touched.

    python benchmarks/bench_chapters.py --profile smoke --jobs 2 --repeats 2 [--chapters a,b] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from detpretrain.book import copy_sources

ROOT = Path(__file__).resolve().parents[1]


def build(root: Path, profile: str, jobs: int, chapters: str | None, env: dict) -> tuple[float, str]:
    """One ``python -m detpretrain book --no-html`` in ``root``; returns (wall seconds, its output)."""
    cmd = [sys.executable, "-m", "detpretrain", "book", "--profile", profile, "--no-html",
           "--chapter-jobs", str(jobs)]
    if chapters:
        cmd += ["--chapters", chapters]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"book failed (exit {done.returncode}) in {root}:\n{done.stdout[-3000:]}\n"
                         f"{done.stderr[-3000:]}")
    return seconds, done.stdout


def chapter_seconds(output: str) -> dict[str, float]:
    """``{chapter: seconds}`` of the executed chapters in a build's summary table."""
    rows = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "executed":
            rows[parts[0]] = float(parts[1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke", choices=["smoke", "mini"])
    parser.add_argument("--jobs", type=int, default=2, help="chapters at once in the compared layout")
    parser.add_argument("--repeats", type=int, default=2, help="builds of each layout")
    parser.add_argument("--chapters", default=None, help="comma-separated chapters (default: every one)")
    parser.add_argument("--keep", default=None, help="scratch folder to use and keep (default: a temporary one)")
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    args = parser.parse_args()

    scratch = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-chapters-"))
    root = copy_sources(scratch / "book-root", ROOT)
    env = {**os.environ, "DETPRETRAIN_RUNS": str(scratch / "runs"), "DETPRETRAIN_DATA": str(scratch / "data"),
           "DETPRETRAIN_FIGURES": str(scratch / "figures")}
    env.pop("DETPRETRAIN_CHAPTER_JOBS", None)
    first, _ = build(root, args.profile, args.jobs, args.chapters, env)
    print(f"first build (corpora, every run, chapters {args.jobs} at once): {first:.0f} s", flush=True)
    seconds: dict[int, list[float]] = {1: [], args.jobs: []}
    last: dict[int, dict[str, float]] = {}
    for rep in range(args.repeats):
        for jobs in ((1, args.jobs) if rep % 2 == 0 else (args.jobs, 1)):
            for notebook in (root / "book").glob("*.ipynb"):
                notebook.unlink()
            shutil.rmtree(root / "_build" / "variants", ignore_errors=True)
            wall, output = build(root, args.profile, jobs, args.chapters, env)
            seconds[jobs].append(wall)
            last[jobs] = chapter_seconds(output)
            print(f"chapter-jobs {jobs}, repeat {rep + 1}: {wall:.1f} s", flush=True)
    median = {jobs: statistics.median(v) for jobs, v in seconds.items()}
    ratio = median[1] / median[args.jobs]
    print(f"median: one at a time {median[1]:.1f} s, {args.jobs} at once {median[args.jobs]:.1f} s; "
          f"ratio {ratio:.2f}x (> 1: at once is faster)")
    print(f"{'chapter':<20} {'1 at a time':>12} {f'{args.jobs} at once':>12}")
    for name in last[1]:
        print(f"{name:<20} {last[1][name]:>12.1f} {last[args.jobs].get(name, float('nan')):>12.1f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"profile": args.profile, "jobs": args.jobs, "first_build": first,
                                              "seconds": {str(k): v for k, v in seconds.items()},
                                              "ratio": ratio, "chapters": {str(k): v for k, v in last.items()}},
                                             indent=2))
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
