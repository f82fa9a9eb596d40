"""Command line: ``python -m detpretrain <command>``.

Commands
--------
data check ROOT --format {voc,coco,folder} [--no-decode] [--strict]
    Images, instances and classes per split; exits 1 with a named :class:`~detpretrain.errors.DataError` on bad data.
data generate --profile {smoke,mini} [--out DIR] [--seed N]
    Generates (or finds cached) the embedded synthetic corpora of a profile.
evaluate --gt GT.json --dt DETS.json --iou 0.1:0.9:0.1 --metric {voc07,voc,coco} [--out M.json]
    AP per class and mAP at each IoU threshold.
evaluate-seg --gt-dir GT --pred-dir PRED [--bands 1:40] [--num-classes N] [--workers N] [--out M.json]
    Segmentation mIoU / pixel accuracy, overall and in trimap / anti-trimap bands (void = 255 in GT).
train --profile smoke [--dataset synthetic|coco|voc] [--data-root DIR] [--coco-root DIR] [--pretrain P] [--seed N]
      [--replicates N] [--device D] [--store DIR] [--set key=value ...] [--out FILE.json]
    A detection experiment (pre-training + fine-tuning + evaluation) through the run store; works under torchrun.
regime-check --profile mini [--store DIR] [--set key=value ...] [--replicates N] [--seed N] [--jobs N] [--threads T]
             [--device D] [--n-boot N]
    Choose the detection fine-tuning schedule on val: fine-tunes the IMAGENET-CLS arm's pre-training replicates,
    scores val and prints the regime's prediction bound (exit 0 = meets, 3 = misses; ``profiles.py``).
sun-check --profile mini --per-scene N [--store DIR] [--replicates N] [--seed N] [--jobs N] [--threads T] [--device D]
    Size the SUN-role training set on val for the SUN scene control against the bag-of-objects oracle (exit 0 = off
    the floor, 3 = at it; selection 4 in ``profiles.py``).
book [--profile {smoke,mini,torchvision,paper}] [--chapters a,b] [--no-html] [-p KEY VALUE ...] [EXECUTOR OPTIONS]
     [--verbose] [--chapter-jobs N]
    The main job: generate the embedded corpora, train the chapters' run plan (as runs execute), execute every
    chapter (papermill; ``--chapter-jobs N`` at once, by default one per CPU core up to 4, one on a GPU machine or
    with ``--verbose``), render with Jupyter Book (``--no-html``: execute only).
run CHAPTER [-p KEY VALUE ...] [-o OUT.ipynb]
    Execute one chapter with papermill parameters.
runs list [--store DIR]
    The runs in the run store: complete, complete (no manifest), corrupt, running or interrupted.
runs verify [RUN ...] [--store DIR] [--write-manifest]
    Hash every artefact against its run's manifest; exits 1 on any problem.
runs rm RUN ... [--store DIR]
    Remove runs (``run:<hash>``, a hash prefix or the directory name).
runs gc [--store DIR] [--dry-run]
    Remove interrupted runs and stale temporary files.
runs prune --profile P [-p KEY VALUE ...] [--store DIR] [--dry-run]
    Remove every run the book's run plan at that profile (with those parameters) does not name nor start from.
runs export [RUN ...] [--store DIR] -o FILE.tar.gz
    Write complete, verified runs (and the pre-trainings they start from) with their manifests to an archive.
runs import FILE [--store DIR]
    Extract an archive into the store, verifying every hash and config hash before any run is put in place.
runs plan --profile P [--chapters a,b] [-p KEY VALUE ...] [--store DIR]
    Every run the book's chapters need, as a dependency graph, with what the store already holds.
runs execute --profile P [--chapters a,b] [-p KEY VALUE ...] [--store DIR] [EXECUTOR OPTIONS]
    Train the plan: N local worker processes, or one submitit (SLURM) job per run.
runs cost --profile P [--chapters a,b] [-p KEY VALUE ...] [--store DIR] [--jobs N]
    Worker-seconds the planned runs took, per part of the build and per chapter, and an estimate of what is left.
results-table [--store DIR] [--readme README.md] [--profile mini [--planned]]
    Headline numbers of the store's finished runs (config hashes, dates) as Markdown; --profile adds every chapter's
    primary claim, --planned keeps only the runs of the book's current plan at that profile; --readme writes them
    into the README's results section.

EXECUTOR OPTIONS (``book``, ``runs execute``): ``--executor {local,slurm}`` (local worker processes, or one
submitit job per run), ``--jobs N`` (runs at once; default one per CPU core, 1 on a GPU machine), ``--threads T``
(torch threads per run; default cores // jobs), and for slurm ``--gpus-per-job G`` (more than one: ``torchrun``
inside the job), ``--cluster {slurm,local,debug}``, ``--partition NAME``, ``--timeout-min M`` (per job; default 1440).

A ``--store`` left out means ``$DETPRETRAIN_RUNS``, else ``runs/``.

``--cpu-bf16`` before any command (``python -m detpretrain --cpu-bf16 book``) trains every run in bfloat16 autocast
on the CPU: other runs (config hashes) than the float32 ones the published results come from.

Errors that come from the user's input (bad data, bad config, a damaged run store) are printed as one line without
a traceback and give exit status 1; an unknown chapter parameter or a bad parameter value gives exit status 2 (a
usage error, like argparse's own), before anything is executed.
"""

from __future__ import annotations

import argparse
import sys

from detpretrain.errors import ConfigError, DataError, ParameterError, RunStoreError
from detpretrain.profiles import PROFILE_NAMES


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detpretrain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-bf16", action="store_true",
                        help="train every run in bfloat16 autocast on the CPU (sets $DETPRETRAIN_CPU_BF16=1 for this "
                             "command and the chapters it executes): other runs than the float32 ones, about 1.3x "
                             "faster on a CPU with AMX, slower without native bfloat16")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect or generate datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    check = data_sub.add_parser("check", help="count images, instances and classes per split; validate every file")
    check.add_argument("root", help="dataset root (VOCdevkit or VOC20xx folder, COCO root, or class-folder root)")
    check.add_argument("--format", required=True, choices=["voc", "coco", "folder"], dest="fmt")
    check.add_argument("--no-decode", action="store_true", help="skip decoding every image (faster, misses corrupt JPEGs)")
    check.add_argument("--strict", action="store_true",
                       help="COCO: a box with zero width or height is an error (default: dropped and counted)")
    gen = data_sub.add_parser("generate", help="generate the embedded synthetic corpora of a profile")
    gen.add_argument("--profile", default="mini", choices=["smoke", "mini"])
    gen.add_argument("--out", default=None, help="corpus cache folder (default: data/generated)")
    gen.add_argument("--seed", type=int, default=0)

    ev = sub.add_parser("evaluate", help="detection AP at a list of IoU thresholds")
    ev.add_argument("--gt", required=True, help="COCO-format ground truth json ('ignore': 1 or 'iscrowd': 1 = difficult)")
    ev.add_argument("--dt", required=True, help="COCO results list json")
    ev.add_argument("--iou", default="0.5", help="'0.5', '0.5,0.7' or 'start:stop:step' (inclusive), e.g. 0.1:0.9:0.1")
    ev.add_argument("--metric", default="voc07", choices=["voc07", "voc", "coco"])
    ev.add_argument("--out", default=None, help="write the metrics json here")

    es = sub.add_parser("evaluate-seg", help="segmentation mIoU and trimap / anti-trimap bands (paper Figure 2)")
    es.add_argument("--gt-dir", required=True, help="folder of ground-truth index PNGs (255 = void)")
    es.add_argument("--pred-dir", required=True, help="folder of predicted index PNGs with the same file names")
    es.add_argument("--bands", default="1:40", help="band widths in px: '10', '1,2,5', '1:40' or '1:40:5'")
    es.add_argument("--num-classes", type=int, default=None, help="default: 21 if labels <= 20, else max label + 1")
    es.add_argument("--workers", type=int, default=None, help="PNG decoding threads (default min(4, CPUs))")
    es.add_argument("--out", default=None, help="write the metrics json here")

    tr = sub.add_parser("train", help="run a detection experiment through the run store")
    tr.add_argument("--profile", default="smoke", choices=list(PROFILE_NAMES))
    tr.add_argument("--dataset", default=None, help="synthetic (default), coco or voc")
    tr.add_argument("--data-root", default=None)
    tr.add_argument("--coco-root", default=None,
                    help="paper profile: COCO 2017 root of the detection pre-training (default $DETPRETRAIN_COCO, "
                         "else ~/data/coco)")
    tr.add_argument("--pretrain", default=None, help="imagenet-cls, detection or scratch (default: all of the profile's)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--replicates", type=int, default=None,
                    help="pre-training replicates per backbone (default: the profile's; mini 3)")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--store", default=None, help="run store folder (default: runs/ or $DETPRETRAIN_RUNS)")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    tr.add_argument("--out", default=None, help="write the experiment summary json here")

    rc = sub.add_parser("regime-check", help="choose a detection fine-tuning schedule on VAL: train the IMAGENET-CLS "
                        "arm's val runs and print the regime's prediction bound (profiles.py)")
    rc.add_argument("--profile", default="mini", choices=list(PROFILE_NAMES))
    rc.add_argument("--store", default=None, help="run store folder (default: runs/ or $DETPRETRAIN_RUNS)")
    rc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="the setting to check, e.g. --set optim.epochs=8 --set optim.milestones=6")
    rc.add_argument("--replicates", type=int, default=None, help="pre-training replicates (default: the profile's)")
    rc.add_argument("--seed", type=int, default=0, help="fine-tuning seed")
    rc.add_argument("--jobs", type=int, default=None, help="parallel runs (default: the executor's layout)")
    rc.add_argument("--threads", type=int, default=None, help="torch threads per run")
    rc.add_argument("--device", default="auto")
    rc.add_argument("--n-boot", type=int, default=1000, help="image resamples of the val split")

    sc = sub.add_parser("sun-check", help="choose the SUN-role training set on VAL (selection 4, profiles.py): "
                        "fine-tune the IMAGENET-CLS arm on shared-background scenes and compare with the "
                        "bag-of-objects oracle")
    sc.add_argument("--profile", default="mini", choices=list(PROFILE_NAMES))
    sc.add_argument("--store", default=None, help="run store folder (default: runs/ or $DETPRETRAIN_RUNS)")
    sc.add_argument("--per-scene", type=int, required=True, help="training images per scene (the candidate size)")
    sc.add_argument("--replicates", type=int, default=None, help="pre-training replicates (default: the profile's)")
    sc.add_argument("--seed", type=int, default=0, help="fine-tuning seed")
    sc.add_argument("--jobs", type=int, default=None, help="parallel runs (default: the executor's layout)")
    sc.add_argument("--threads", type=int, default=None, help="torch threads per run")
    sc.add_argument("--device", default="auto")

    book = sub.add_parser("book", help="execute every chapter with papermill and render the book to _build/html")
    book.add_argument("--profile", default="mini", choices=list(PROFILE_NAMES))
    book.add_argument("--chapters", default=None, help="comma-separated chapter names (default: all, in _toc order)")
    book.add_argument("--no-html", action="store_true", help="execute the chapters but do not run jupyter-book")
    book.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                      help="a papermill parameter passed to every chapter (e.g. -p device cuda)")
    _executor_options(book)
    book.add_argument("--verbose", action="store_true", help="stream papermill's cell progress and cell output")
    book.add_argument("--chapter-jobs", type=_positive_int, default=None,
                      help="chapters executed at once after the runs, each kernel with at least cores // N threads, "
                           "more when fewer chapters are left to execute beside it (default: one per CPU core, at most "
                           "4; 1 on a GPU machine or with --verbose)")

    run = sub.add_parser("run", help="execute one chapter with papermill parameters")
    run.add_argument("chapter", help="chapter name (e.g. detection) or path to book/<chapter>.py / .ipynb")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    run.add_argument("-o", "--output", default=None, help="executed notebook path (default: book/<chapter>.ipynb)")

    runs = sub.add_parser("runs", help="the run store")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    store_help = "run store folder (default: runs/ or $DETPRETRAIN_RUNS)"
    ls = runs_sub.add_parser("list", help="list runs and their state")
    ls.add_argument("--store", default=None, help=store_help)
    ver = runs_sub.add_parser("verify", help="hash every artefact against its manifest; exit 1 on any problem")
    ver.add_argument("run", nargs="*", help="runs to verify (default: all)")
    ver.add_argument("--store", default=None, help=store_help)
    ver.add_argument("--write-manifest", action="store_true",
                     help="write the manifest of complete runs that have none (older stores)")
    rm = runs_sub.add_parser("rm", help="remove runs")
    rm.add_argument("run", nargs="+", help="run:<hash>, a hash prefix or the directory name")
    rm.add_argument("--store", default=None, help=store_help)
    gc = runs_sub.add_parser("gc", help="remove interrupted runs and stale temporary files")
    gc.add_argument("--store", default=None, help=store_help)
    gc.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    ex = runs_sub.add_parser("export", help="write runs with their manifests to a .tar.gz")
    ex.add_argument("run", nargs="*", help="runs to export (default: every complete run)")
    ex.add_argument("--store", default=None, help=store_help)
    ex.add_argument("-o", "--output", required=True, help="the archive to write (FILE.tar.gz)")
    im = runs_sub.add_parser("import", help="import runs from an archive written by runs export (verified first)")
    im.add_argument("archive", help="FILE.tar.gz")
    im.add_argument("--store", default=None, help=store_help)
    for name, text in (("plan", "print the runs the chapters need (dependency graph, status in the store)"),
                       ("execute", "train the runs the chapters need, in parallel"),
                       ("cost", "worker-seconds the planned runs took (per part of the build and per chapter) and "
                                "an estimate of what is left, from the runs' metrics")):
        cmd = runs_sub.add_parser(name, help=text)
        cmd.add_argument("--profile", default="mini", choices=list(PROFILE_NAMES))
        cmd.add_argument("--chapters", default=None, help="comma-separated chapter names (default: every chapter)")
        cmd.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                         help="a chapter parameter, as for book (e.g. -p seeds '[0]')")
        cmd.add_argument("--store", default=None, help=store_help)
        if name == "execute":
            _executor_options(cmd)
        if name == "cost":
            cmd.add_argument("--jobs", type=_positive_int, default=None,
                             help="worker processes for the wall-clock bound (default: as runs execute, one per "
                                  "CPU core, 1 on a GPU machine)")

    pr = runs_sub.add_parser("prune", help="remove every run the book's run plan at this profile does not name "
                                           "(older configurations, other parameters, other profiles)")
    pr.add_argument("--profile", default="mini", choices=list(PROFILE_NAMES))
    pr.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                    help="a chapter parameter, as for book (the plan is the one book would train with them)")
    pr.add_argument("--store", default=None, help=store_help)
    pr.add_argument("--dry-run", action="store_true", help="only list what would be removed")

    res = sub.add_parser("results-table", help="the headline numbers of the run store's finished runs (Markdown)")
    res.add_argument("--store", default=None, help="run store folder (default: runs/ or $DETPRETRAIN_RUNS)")
    res.add_argument("--readme", default=None, help="write the table into this README's results section")
    res.add_argument("--profile", default=None, choices=list(PROFILE_NAMES),
                     help="also every chapter's primary claim at this profile, read from the store (e.g. mini)")
    res.add_argument("--planned", action="store_true",
                     help="with --profile: only the runs the book's current plan at that profile reads (a store "
                          "also holds runs of earlier configurations)")
    return parser


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _executor_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--executor", default="local", choices=["local", "slurm"],
                     help="local worker processes, or one submitit job per run (SLURM)")
    cmd.add_argument("--jobs", type=int, default=None,
                     help="runs trained at once (default: one per CPU core; 1 on a GPU machine)")
    cmd.add_argument("--threads", type=int, default=None, help="torch threads per run (default: cores // jobs)")
    cmd.add_argument("--gpus-per-job", type=int, default=0, help="slurm: GPUs per run (> 1: torchrun in the job)")
    cmd.add_argument("--cluster", default=None, choices=["slurm", "local", "debug"],
                     help="slurm: submitit's cluster (default: SLURM where srun exists, else local subprocesses)")
    cmd.add_argument("--partition", default=None, help="slurm: the partition")
    cmd.add_argument("--timeout-min", type=int, default=24 * 60, help="slurm: time limit per job, minutes")


def _request_cpu_bf16() -> None:
    """``--cpu-bf16``: set ``$DETPRETRAIN_CPU_BF16=1`` (read by :func:`detpretrain.profiles.get_profile` here, in the
    executor's workers and in the chapters' kernels), and say so, with a warning where the CPU would emulate it."""
    import os

    from detpretrain.engine import cpu_has_native_bf16
    from detpretrain.profiles import CPU_BF16_ENV

    os.environ[CPU_BF16_ENV] = "1"
    native = cpu_has_native_bf16()
    print(f"--cpu-bf16: every run trains in bfloat16 autocast on the CPU (${CPU_BF16_ENV}=1); "
          + ("this CPU has native bfloat16 (AMX / AVX512-BF16)" if native else
             "WARNING: this CPU has no native bfloat16 (no AMX / AVX512-BF16): oneDNN emulates it, slower than "
             "float32"), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (1 for bad data or configuration, printed without traceback)."""
    args = _build_parser().parse_args(argv)
    try:
        if args.cpu_bf16:
            _request_cpu_bf16()
        if args.command == "data" and args.data_command == "check":
            from detpretrain.data.check import check_command

            return check_command(args.root, args.fmt, decode_images=not args.no_decode, strict=args.strict)
        if args.command == "data" and args.data_command == "generate":
            from detpretrain.data.builders import generate_command

            return generate_command(args.profile, out=args.out, seed=args.seed)
        if args.command == "evaluate":
            from detpretrain.evaluation.detection import evaluate_command

            return evaluate_command(args.gt, args.dt, iou=args.iou, metric=args.metric, out=args.out)
        if args.command == "evaluate-seg":
            from detpretrain.evaluation.segmentation import evaluate_seg_command

            return evaluate_seg_command(args.gt_dir, args.pred_dir, bands=args.bands, num_classes=args.num_classes,
                                        out=args.out, workers=args.workers)
        if args.command == "train":
            from detpretrain.experiments.detection import train_command

            return train_command(args)
        if args.command == "sun-check":
            from detpretrain.selection import sun_check_command

            return sun_check_command(args)
        if args.command == "regime-check":
            from detpretrain.selection import regime_check_command

            return regime_check_command(args)
        if args.command == "book":
            from detpretrain.book import book_command

            chapters = _chapters(args.chapters)
            return book_command(args.profile, chapters=chapters, html=not args.no_html, params=dict(args.parameter),
                                verbose=args.verbose, execution=_execution(args), chapter_jobs=args.chapter_jobs)
        if args.command == "run":
            from detpretrain.book import run_command

            return run_command(args.chapter, params=dict(args.parameter), output=args.output)
        if args.command == "runs":
            from detpretrain import runs

            if args.runs_command == "list":
                return runs.list_command(args.store)
            if args.runs_command == "verify":
                return runs.verify_command(args.store, args.run, write_manifest=args.write_manifest)
            if args.runs_command == "rm":
                return runs.rm_command(args.store, args.run)
            if args.runs_command == "gc":
                return runs.gc_command(args.store, dry_run=args.dry_run)
            if args.runs_command == "export":
                return runs.export_command(args.store, args.run, args.output)
            if args.runs_command == "import":
                return runs.import_command(args.archive, args.store)
            if args.runs_command == "prune":
                from detpretrain.book import runs_prune_command

                return runs_prune_command(args.profile, params=dict(args.parameter), store=args.store,
                                          dry_run=args.dry_run)
            if args.runs_command in ("plan", "execute", "cost"):
                chapters = _chapters(args.chapters)
                from detpretrain.book import runs_cost_command, runs_execute_command, runs_plan_command

                if args.runs_command == "plan":
                    return runs_plan_command(args.profile, chapters=chapters, params=dict(args.parameter),
                                             store=args.store)
                if args.runs_command == "cost":
                    return runs_cost_command(args.profile, chapters=chapters, params=dict(args.parameter),
                                             store=args.store, jobs=args.jobs)
                return runs_execute_command(args.profile, chapters=chapters, params=dict(args.parameter),
                                            store=args.store, **_execution(args))
        if args.command == "results-table":
            from detpretrain.results import results_command

            return results_command(args.store, readme=args.readme, profile=args.profile, planned=args.planned)
    except ParameterError as err:
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    except (DataError, ConfigError, RunStoreError, FileNotFoundError, FloatingPointError) as err:
        # FloatingPointError: a training loss that is not finite (engine.train_one_epoch names epoch and step)
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: {INTERRUPTED}", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args}")


#: what a user who pressed Ctrl-C is told (runs write their epochs and results atomically: `engine.fit`, `runs.py`)
INTERRUPTED = ("finished runs, and the epochs of the run that was training, are kept in the run store; run the same "
               "command again to resume")


def _chapters(value: str | None) -> list[str] | None:
    """``--chapters a,b`` -> ``["a", "b"]``; not given -> None (every chapter).

    Raises:
        ConfigError: an empty name (``--chapters ""`` or ``--chapters detection,``), which would otherwise mean
            "every chapter" or an unknown chapter named "".
    """
    if value is None:
        return None
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise ConfigError(f"--chapters {value!r}: an empty chapter name; give names separated by commas, e.g. "
                          "--chapters detection,ablations")
    return names


def _execution(args) -> dict:
    return {"executor": args.executor, "jobs": args.jobs, "threads": args.threads, "gpus_per_job": args.gpus_per_job,
            "cluster": args.cluster, "partition": args.partition, "timeout_min": args.timeout_min}


if __name__ == "__main__":
    sys.exit(main())
