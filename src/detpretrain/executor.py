"""Execute a run plan (:mod:`detpretrain.plan`): N local worker processes, or one SLURM job per run via submitit.

``python -m detpretrain runs execute --profile mini --jobs 2`` trains every run the book needs, each run once, in
an order where a fine-tuning starts only after the pre-training it starts from is complete:

* ``--executor local`` (default): a pool of ``jobs`` worker processes (``spawn``), each with
  ``torch.set_num_threads(threads)``, ``threads = cores // jobs`` by default. On the 2-core development machine two
  processes of one thread each train more images per second than one process of two threads
  (``benchmarks/README.md``), so the default is one thread per core: ``jobs = cores``.
* ``--executor slurm``: each run is one job submitted with submitit (``AutoExecutor``: a SLURM cluster when
  ``srun`` is there; ``--cluster local`` runs the same code as local subprocesses, which is how it is tested
  here), with ``--gpus-per-job`` GPUs; a run with more than one GPU is started inside its job with
  ``torchrun --standalone --nproc_per_node G -m detpretrain.executor CONFIG STORE`` (DDP, :mod:`detpretrain.engine`).
  The driver stays in the foreground and submits a run when its dependencies are complete, at most ``jobs`` at a
  time.

Every worker trains through :func:`detpretrain.runs.get_or_train`, whose lock makes concurrent executors on one
store safe: a run locked by another process is left for later while other runs are ready, and a worker that does
wait for the lock finds the run complete and trains nothing.

Progress: each worker writes its run's epoch, iteration and loss to a small JSON file under the build's log folder;
the driver shows one tqdm line per worker (run, epoch, iteration, loss, ETA) and a summary line (runs done / left,
and the hours of training left, estimated from the finished runs of the same shape or kind: :func:`time_left_text`) on a
terminal, and plain lines otherwise. Every build writes a log in ``_build/logs/``: ``<time>-book-<profile>.log``
from ``book``, ``<time>-runs-<profile>.log`` from ``runs execute`` (what started, finished or failed, with seconds,
headline and the estimate of what is left; ``-1``, ``-2`` ... appended when two start in the same second), and each
run's worker output goes to ``<run>.out`` in the folder of the same name beside it (e.g.
``_build/logs/<time>-runs-<profile>/<run>.out``).

Faults: a run that raises stops the build: the other workers are stopped, and :class:`ExecutionError` names the
run, its ``log.txt``, the worker's output file and the exception. Completed runs stay in the store; a stopped or
killed build resumes where it stopped when executed again (an interrupted run resumes from its last epoch
checkpoint, see :mod:`detpretrain.runs`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
import traceback
from pathlib import Path

#: executors of :func:`execute`
EXECUTORS = ("local", "slurm")
#: seconds between two polls of the workers' progress files
POLL_S = 0.5


class ExecutionError(Exception):
    """A run failed in a worker; the message names it, its logs and the exception (no traceback)."""

    def __init__(self, message: str, *, run: str = "", run_dir: str = "", output: str = "", error: str = "",
                 traceback_text: str = ""):
        super().__init__(message)
        self.run, self.run_dir, self.output, self.error, self.traceback = run, run_dir, output, error, traceback_text


@dataclasses.dataclass
class ExecutionReport:
    """What :func:`execute` did: ``trained`` / ``found`` runs (hash -> seconds), the build log and the wall time."""

    trained: dict[str, float] = dataclasses.field(default_factory=dict)
    found: list[str] = dataclasses.field(default_factory=list)
    log_path: Path | None = None
    seconds: float = 0.0
    jobs: int = 1
    threads: int = 1


#: set by a book build in each chapter's kernel to the cores that chapter was given
#: (:func:`detpretrain.book.chapter_threads`): what the kernel trains or executes in its turn shares those
CORES_ENV = "DETPRETRAIN_CORES"


def cpu_count() -> int:
    """CPU cores this process may use: its affinity mask where the OS has one, at most :data:`CORES_ENV` where a
    book build set it (a chapter's share of the machine)."""
    cores = os.cpu_count() or 1
    with contextlib.suppress(AttributeError, OSError):
        cores = len(os.sched_getaffinity(0))
    share = os.environ.get(CORES_ENV, "")
    if share.isdigit() and int(share) > 0:
        cores = min(cores, int(share))
    return max(1, cores)


def default_layout(jobs: int | None = None, threads: int | None = None, device: str = "auto") -> tuple[int, int]:
    """``(jobs, threads per job)``: one single-threaded job per core on a CPU (measured faster than one job with
    every core, ``benchmarks/README.md``), one job on a GPU machine unless asked."""
    cores = cpu_count()
    if jobs is None:
        uses_gpu = device.startswith("cuda") or (device == "auto" and _cuda_available())
        jobs = 1 if uses_gpu else max(1, cores // (threads or 1))
    return max(1, jobs), max(1, threads if threads is not None else cores // max(1, jobs))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class BuildLog:
    """``<folder>/<time>-<name>.log``, one line per event with a timestamp, and ``<time>-<name>/`` beside it for
    the workers' progress and output files."""

    def __init__(self, folder: str | os.PathLike, name: str):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{stamp}-{name}.log"
        k = 1
        while self.path.exists():
            self.path = folder / f"{stamp}-{name}-{k}.log"
            k += 1
        self.folder = self.path.with_suffix("")
        (self.folder / "progress").mkdir(parents=True, exist_ok=True)

    def write(self, line: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {line.rstrip()}\n")

    def tee(self, log):
        """A log callable writing to ``log`` and to this file."""

        def both(line: str) -> None:
            self.write(line)
            log(line)

        both.writes_build_log = True  # execute() does not tee it again
        return both


# ------------------------------------------------------------------------------------------------ the worker


class _ProgressFile:
    """The ``on_step`` of a worker: the latest step as JSON in one file, rewritten at most every :data:`POLL_S`.
    ``called`` tells whether this process trained (or evaluated) the run at all."""

    def __init__(self, path: str | None):
        self.path, self.last, self.called = path, 0.0, False

    def __call__(self, step: dict) -> None:
        self.called = True
        now = time.monotonic()
        if self.path is None or (now - self.last < POLL_S and "phase" not in step
                                 and step.get("iteration") != step.get("iterations")):
            return
        self.last = now
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump({**step, "time": time.time()}, f)
        os.replace(tmp, self.path)


def _init_worker(env: dict, threads: int) -> None:
    """Pool initialiser: the environment and the thread count, before the first run imports anything heavy; on
    Linux the worker is killed with its driver (``PR_SET_PDEATHSIG``), so a killed build leaves no orphan training."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    os.environ.update(env)
    os.environ.pop("DETPRETRAIN_UNPLANNED_LOG", None)
    import torch

    torch.set_num_threads(threads)


@contextlib.contextmanager
def _output_to(path: str | None):
    """File descriptors 1 and 2 (and ``sys.stdout``/``sys.stderr``) appended to ``path`` while a run trains."""
    if path is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def train_task(task: dict) -> dict:
    """Train one run in a worker (local pool or submitit job); never raises.

    ``task``: ``config`` (dict), ``store``, ``device``, ``progress`` (file or None), ``output`` (file or None),
    ``env`` (set first), ``threads``, ``gpus`` (> 1: torchrun inside this process's job).

    Returns:
        ``{"ok": True, "trained": bool, "seconds", "headline"}`` or ``{"ok": False, "error", "traceback"}``.
    """
    os.environ.update(task.get("env") or {})
    os.environ.pop("DETPRETRAIN_UNPLANNED_LOG", None)
    t0 = time.perf_counter()
    with _output_to(task.get("output")):
        try:
            import torch

            from detpretrain.config import from_dict
            from detpretrain.runs import RunStore, get_or_train

            if task.get("threads"):
                torch.set_num_threads(int(task["threads"]))
            config = from_dict(task["config"])
            store = RunStore(task["store"])
            reporter = _ProgressFile(task.get("progress"))
            if int(task.get("gpus") or 1) > 1 and not store.run_for(config).complete:
                _torchrun(task)
                run, trained = store.run_for(config), True
            else:  # another executor may hold the run: get_or_train then waits and finds it complete
                run = get_or_train(config, store, device=task.get("device", "auto"), progress=False, on_step=reporter)
                trained = reporter.called
            return {"ok": True, "trained": trained, "seconds": time.perf_counter() - t0,
                    "headline": run.metrics.get("headline", "")}
        except BaseException as err:  # noqa: BLE001 - reported to the driver, which stops the build
            text = traceback.format_exc()
            print(text, file=sys.stderr)
            return {"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": text}


def _torchrun(task: dict) -> None:
    """Train ``task`` with ``torchrun --standalone --nproc_per_node gpus`` (multi-GPU DDP inside one job)."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(task["config"], f)
    try:
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                        str(int(task["gpus"])), "-m", "detpretrain.executor", f.name, task["store"],
                        "--device", task.get("device", "auto")], check=True)
    finally:
        os.unlink(f.name)


def main(argv: list[str] | None = None) -> int:
    """``python -m detpretrain.executor CONFIG.json STORE [--device D]``: train one config (every torchrun rank)."""
    import argparse

    from detpretrain.config import from_dict
    from detpretrain.runs import RunStore, get_or_train

    parser = argparse.ArgumentParser(description="train one run of a plan (all ranks under torchrun)")
    parser.add_argument("config")
    parser.add_argument("store")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    config = from_dict(json.loads(Path(args.config).read_text()))
    get_or_train(config, RunStore(args.store), device=args.device, progress=False)
    return 0


# ------------------------------------------------------------------------------------------------ backends


class _Backend:
    """What the driver needs of a backend: ``submit(task) -> handle``, ``done``, ``result``, ``stop``, ``close``."""

    @staticmethod
    def done(handle) -> bool:
        return handle.done()

    def result(self, handle) -> dict:
        """The worker's result dict; a worker or job that died becomes a failed result."""
        try:
            return handle.result()
        except Exception as err:  # noqa: BLE001 - killed, out of memory, over the time limit
            return {"ok": False, "error": self.failure(handle, err), "traceback": ""}

    @staticmethod
    def failure(handle, err: Exception) -> str:
        return f"the worker process died ({type(err).__name__}: {err})"


class _LocalBackend(_Backend):
    """``jobs`` spawned worker processes (``concurrent.futures``)."""

    def __init__(self, jobs: int, threads: int, env: dict):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init_worker, initargs=(env, threads))

    def submit(self, task: dict):
        return self.pool.submit(train_task, task)

    def stop(self) -> None:
        """Stop at once: cancel what has not started, terminate the workers (their runs resume later)."""
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            with contextlib.suppress(Exception):
                p.terminate()
        for p in processes:
            with contextlib.suppress(Exception):
                p.join(5)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class _SubmititBackend(_Backend):
    """One submitit job per run (SLURM, or submitit's local executor: subprocesses)."""

    def __init__(self, folder: Path, *, cluster: str | None, gpus: int, threads: int, timeout_min: int,
                 partition: str | None, slurm: dict | None):
        import submitit

        self.executor = submitit.AutoExecutor(folder=str(folder / "submitit"), cluster=cluster)
        params = {"timeout_min": timeout_min, "cpus_per_task": threads, "tasks_per_node": 1, "nodes": 1,
                  "gpus_per_node": gpus, "name": "detpretrain"}
        if partition:
            params["slurm_partition"] = partition
        for key, value in (slurm or {}).items():
            params[key if key.startswith("slurm_") else f"slurm_{key}"] = value
        if self.executor.cluster != "slurm":  # local / debug: only the generic parameters apply
            params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
        self.executor.update_parameters(**params)
        self.jobs: list = []

    def submit(self, task: dict):
        job = self.executor.submit(train_task, task)
        self.jobs.append(job)
        return job

    @staticmethod
    def failure(handle, err: Exception) -> str:
        return f"job {handle.job_id} failed ({type(err).__name__}: {str(err)[-500:]})"

    def stop(self) -> None:
        for job in self.jobs:
            if not job.done():
                with contextlib.suppress(Exception):
                    job.cancel()

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------ progress


class _Display:
    """One tqdm line per worker and a summary line on a terminal (stderr); plain lines otherwise."""

    def __init__(self, slots: int, log, build_log: BuildLog, *, enabled: bool | None = None):
        from tqdm.auto import tqdm

        self.tqdm, self.log, self.build_log = tqdm, log, build_log
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.summary = tqdm(total=0, desc="runs", unit="run", position=0, disable=not self.enabled,
                            dynamic_ncols=True, leave=False)
        self.bars = [tqdm(total=1, desc=f"worker {i + 1}: idle", position=i + 1, disable=not self.enabled,
                          dynamic_ncols=True, leave=False,
                          bar_format="{desc} {percentage:3.0f}%|{bar:20}| [{elapsed}<{remaining}]{postfix}")
                     for i in range(slots)]
        self.started: dict[int, bool] = {}

    def write(self, line: str) -> None:
        """A line in the build log, and above the bars (or through ``log`` without bars)."""
        if self.enabled:
            self.build_log.write(line)
            self.tqdm.write(line, file=sys.stderr)
        else:
            self.log(line)

    def start(self, slot: int, label: str) -> None:
        bar = self.bars[slot]
        bar.reset(total=1)
        bar.set_description_str(f"worker {slot + 1}: {label}", refresh=False)
        bar.set_postfix_str("starting")
        self.started[slot] = False

    def step(self, slot: int, step: dict) -> None:
        bar = self.bars[slot]
        if step.get("phase") == "evaluate":
            bar.set_postfix_str("evaluating")
            return
        if "iterations" not in step:
            return
        total = step["epochs"] * step["iterations"]
        n = step["epoch"] * step["iterations"] + step["iteration"]
        if not self.started.get(slot):
            bar.reset(total=total)
            bar.initial = bar.n = n  # a resumed run: the rate counts from here
            self.started[slot] = True
        elif n > bar.n:
            bar.update(n - bar.n)
        bar.set_postfix_str(f"epoch {step['epoch'] + 1}/{step['epochs']} it {step['iteration']}/"
                            f"{step['iterations']} loss {step['loss']:.3f}")

    def finish(self, slot: int, done: int, left: int, time_left: str = "") -> None:
        bar = self.bars[slot]
        bar.set_description_str(f"worker {slot + 1}: idle", refresh=False)
        bar.set_postfix_str("")
        bar.reset(total=1)
        self.summary.update(1)
        self.summary.set_postfix_str(f"{done} done, {left} left" + (f", {time_left}" if time_left else ""))

    def close(self) -> None:
        for bar in [*self.bars, self.summary]:
            bar.close()


# ------------------------------------------------------------------------------------------------ the driver


def _locked_elsewhere(path: Path) -> bool:
    """Whether another process holds the run directory's lock (it is training that run now)."""
    import fcntl

    lock = path / ".lock"
    if not lock.exists():
        return False
    try:
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def execute(plan, store, *, executor: str = "local", jobs: int | None = None, threads: int | None = None,
            device: str = "auto", data_cache: str | os.PathLike | None = None,
            log_dir: str | os.PathLike = "_build/logs", name: str = "runs", log=print, progress: bool | None = None,
            replan=None, gpus_per_job: int = 0, cluster: str | None = None, timeout_min: int = 24 * 60,
            partition: str | None = None, slurm: dict | None = None,
            build_log: BuildLog | None = None) -> ExecutionReport:
    """Train every run of ``plan`` that ``store`` lacks, dependencies first, with ``jobs`` parallel workers.

    Args:
        plan: a :class:`~detpretrain.plan.Plan`.
        store: the :class:`~detpretrain.runs.RunStore`.
        executor: ``"local"`` (worker processes) or ``"slurm"`` (submitit jobs; module docstring).
        jobs, threads: parallel runs and torch threads per run (default :func:`default_layout`).
        device: the runs' device (``auto``, ``cpu``, ``cuda``).
        data_cache: the generated-corpus folder the workers read (``$DETPRETRAIN_DATA``).
        log_dir, name: the build log is ``<log_dir>/<time>-<name>.log``.
        log: where lines go (progress bars go to stderr on a terminal).
        progress: tqdm lines (default: when stderr is a terminal).
        replan: a callable returning the plan again once this one is done (runs that depend on trained results,
            the eigenspectrum's narrower detector); executed until it adds nothing.
        gpus_per_job, cluster, timeout_min, partition, slurm: the submitit job parameters (``slurm``: further
            ``slurm_*`` parameters of submitit, e.g. ``{"account": "..."}``).
        build_log: write to this :class:`BuildLog` (default: a new one in ``log_dir``).

    Returns:
        an :class:`ExecutionReport`.

    Raises:
        ExecutionError: a run failed (the build stops; completed runs stay in the store).
        ConfigError: an unknown executor, or runs to train locally for a GPU-sized profile (``torchvision``,
            ``paper``) with ``device="auto"`` on a machine without CUDA
            (:func:`~detpretrain.experiments.common.check_device`; ``device="cpu"`` insists).
    """
    from detpretrain.config import to_dict
    from detpretrain.errors import ConfigError

    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    to_train = any(s != "complete" for s in plan.status(store).values())
    if executor == "local" and getattr(plan, "profile", "") and to_train:
        from detpretrain.experiments.common import check_device
        from detpretrain.profiles import PROFILES

        if plan.profile in PROFILES:  # a GPU-sized profile on a machine without CUDA stops here, before any run
            check_device(PROFILES[plan.profile], device)
    jobs, threads = default_layout(jobs, threads, device)
    build_log = build_log or BuildLog(log_dir, name)
    out = ExecutionReport(log_path=build_log.path, jobs=jobs, threads=threads)
    t_start = time.perf_counter()
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    if data_cache is not None:
        env["DETPRETRAIN_DATA"] = str(Path(data_cache).resolve())
    say = build_log.tee(log) if not getattr(log, "writes_build_log", False) else log
    left = sum(s != "complete" for s in plan.status(store).values())
    say(f"{len(plan)} planned runs, {left} to train with executor {executor}: {jobs} job(s) x {threads} thread(s), "
        f"store {Path(store.root).resolve()}; log {build_log.path}")
    bf16 = sum(c.optim.cpu_bf16 for c in plan.configs)
    if bf16:
        say(f"{bf16} of them train in bfloat16 autocast on the CPU (optim.cpu_bf16, --cpu-bf16): other runs than the "
            "float32 ones the published results come from")
    backend = None
    display = None
    try:
        while True:
            status = plan.status(store)
            todo = [h for h in plan.runs if status[h] != "complete"]
            out.found += [h for h in plan.runs if status[h] == "complete" and h not in out.trained
                          and h not in out.found]
            if not todo:
                break
            if backend is None:
                backend = (_LocalBackend(jobs, threads, env) if executor == "local" else
                           _SubmititBackend(build_log.folder, cluster=cluster, gpus=gpus_per_job, threads=threads,
                                            timeout_min=timeout_min, partition=partition, slurm=slurm))
                display = _Display(jobs, say, build_log, enabled=progress)
            display.summary.total = (display.summary.total or 0) + len(todo)
            display.summary.refresh()
            _drive(plan, store, todo, backend, display, build_log, jobs=jobs, threads=threads, device=device,
                   env=env, gpus=gpus_per_job, report=out, to_dict=to_dict, replan=replan)
            if replan is None:
                break
            plan = replan()
    except BaseException:
        if backend is not None:
            backend.stop()
        raise
    finally:
        if display is not None:
            display.close()
    if backend is not None:
        backend.close()
    out.seconds = time.perf_counter() - t_start
    say(f"executed: {len(out.trained)} trained, {len(out.found)} found complete, {out.seconds:.0f} s")
    return out


def time_left_text(plan, store, jobs: int) -> str:
    """What the plan still needs, for the progress lines: ``"~2.4 h of training left"`` (the estimates of
    :func:`detpretrain.plan.plan_cost`, from the finished runs of the same shape or kind, over ``jobs`` workers), with
    ``" for K of the N runs not complete"`` when some have no estimate yet; ``""`` when none has one."""
    from detpretrain.plan import estimate_left, plan_cost

    seconds, known, waiting = estimate_left(plan_cost(plan, store))
    if not known:
        return ""
    text = f"~{seconds / max(1, jobs) / 3600:.1f} h of training left"
    return text if known == waiting else f"{text} for {known} of the {waiting} runs not complete"


def _drive(plan, store, todo: list[str], backend, display: _Display, build_log: BuildLog, *, jobs: int, threads: int,
           device: str, env: dict, gpus: int, report: ExecutionReport, to_dict, replan=None) -> None:
    """Schedule ``todo`` (hashes of ``plan``) on ``backend`` until all are complete; raise on the first failure.

    ``replan``: when a worker is free, no planned run can start and a run has finished since the last look, the plan
    is made again and the runs it gained (those that depend on trained results, e.g. the eigenspectrum's narrower
    detectors once the S detectors are trained) start at once, beside the runs still training, instead of after
    them.
    """
    pending = list(todo)
    done = {h for h in plan.runs if h not in pending}
    running: dict[str, tuple] = {}  # hash -> (handle, slot, progress file, start time)
    free = list(range(jobs))
    left = len(pending)
    finished_since_replan = False
    while pending or running:
        ready = [h for h in pending if all(n in done for n in plan.runs[h].needs)]
        if replan is not None and free and not ready and finished_since_replan:
            finished_since_replan = False
            try:
                grown = replan()
                status = grown.status(store)
            except Exception as err:  # noqa: BLE001 - the runs training now must not stop for it; execute() plans
                display.write(f"planning again failed ({type(err).__name__}: {err}); the plan is completed after "
                              "the runs in progress")  # again at the end and reports it there
                grown, status = None, {}
            added = [] if grown is None else [h for h in grown.runs if h not in plan.runs and status[h] != "complete"]
            if added:  # merged into the plan as it is (a chapter that fails to plan this time keeps its runs)
                plan = dataclasses.replace(plan, runs={**plan.runs, **{h: grown.runs[h] for h in added}})
                done |= {h for h in grown.runs if status[h] == "complete"}
                pending += added
                left += len(added)
                display.summary.total = (display.summary.total or 0) + len(added)
                display.write(f"the plan grew by {len(added)} run(s) that depend on trained results: "
                              + ", ".join(plan.runs[h].label for h in added))
                ready = [h for h in pending if all(n in done for n in plan.runs[h].needs)]
        ready.sort(key=lambda h: _locked_elsewhere(store.path_for(plan.runs[h].config)))  # stable: plan order
        while ready and free:
            h = ready.pop(0)
            pending.remove(h)
            slot = free.pop(0)
            r = plan.runs[h]
            progress_file = build_log.folder / "progress" / f"{h}.json"
            progress_file.unlink(missing_ok=True)
            output = build_log.folder / f"{store.path_for(r.config).name}.out"
            task = {"config": to_dict(r.config), "store": str(Path(store.root).resolve()), "device": device,
                    "progress": str(progress_file), "output": str(output), "env": env, "threads": threads,
                    "gpus": gpus}
            running[h] = (backend.submit(task), slot, progress_file, time.perf_counter())
            display.start(slot, r.label)
            build_log.write(f"start {r.label} ({store.path_for(r.config).name}) on worker {slot + 1}")
        if not running:
            blocked = ", ".join(plan.runs[h].label for h in pending)
            raise RuntimeError(f"no run can start: {blocked} wait for runs that are not planned")
        time.sleep(POLL_S)
        for h, (handle, slot, progress_file, t0) in list(running.items()):
            with contextlib.suppress(OSError, ValueError):
                display.step(slot, json.loads(progress_file.read_text()))
            if not backend.done(handle):
                continue
            result = backend.result(handle)
            del running[h]
            free.append(slot)
            free.sort()
            r = plan.runs[h]
            run_dir = store.path_for(r.config)
            output = build_log.folder / f"{run_dir.name}.out"
            if not result.get("ok"):
                build_log.write(f"FAILED {r.label} ({run_dir.name}): {result.get('error')}\n{result.get('traceback')}")
                raise ExecutionError(
                    f"run {r.label} ({run_dir.name}) failed: {result.get('error')}\n"
                    f"  run log: {run_dir / 'log.txt'}\n  worker output: {output}\n  build log: {build_log.path}\n"
                    "  completed runs stay in the store; executing the plan again resumes here",
                    run=r.label, run_dir=str(run_dir), output=str(output), error=result.get("error", ""),
                    traceback_text=result.get("traceback", ""))
            done.add(h)
            left -= 1
            finished_since_replan = True
            seconds = time.perf_counter() - t0
            if result.get("trained"):
                report.trained[h] = seconds
            else:
                report.found.append(h)
            time_left = ""
            if result.get("trained") and left:
                with contextlib.suppress(Exception):  # a progress line never stops a build
                    time_left = time_left_text(plan, store, jobs)
            display.finish(slot, len(report.trained) + len(report.found), left, time_left)
            verb = "trained" if result.get("trained") else "found complete"
            display.write(f"{verb} {r.label} ({run_dir.name}) in {seconds:.0f} s  {result.get('headline', '')}"
                          + (f"  [{left} runs left: {time_left}]" if time_left else ""))
            progress_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
