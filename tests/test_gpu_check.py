"""benchmarks/gpu_check.py runs end to end (on the CPU here, tiny sizes: the code path, not the figures) and the
NCCL/gloo check works under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_and_reports_both_loops(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--allow-cpu", "--out",
                           str(tmp_path), "--size", "64", "--images", "8", "--model-size", "64", "--warmup", "1",
                           "--repeats", "1", "--compare-layouts"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert set(report["images_per_second"]) == {"ours", "bare", "ours_contiguous"}
    assert all(v > 0 for v in report["images_per_second"].values())
    assert report["ratio_channels_last_over_contiguous"] > 0  # on the CPU both arms are contiguous
    assert report["ratio_ours_over_bare"] > 0 and report["eval_seconds_per_image"] > 0
    assert report["estimate"]["detection_gpu_hours_scaled"] > 0 and "ratio ours / bare" in proc.stdout


def test_gpu_check_refuses_a_machine_without_cuda_unless_told(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the refusal on a machine without CUDA")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr


def test_nccl_check_all_reduces_under_torchrun():
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(ROOT / "benchmarks" / "nccl_check.py")],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count(" ok") == 2 and "all_reduce 3" in proc.stdout
