"""Single-process or ``torchrun`` DistributedDataParallel helpers (gloo on CPU, nccl on GPU).

Under ``torchrun --nproc_per_node N python -m detpretrain train ...`` the environment variables RANK, WORLD_SIZE and
LOCAL_RANK are set; :func:`init` then starts the process group. Without them everything runs in one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from detpretrain.errors import ConfigError


def is_distributed() -> bool:
    """True inside an initialised process group (torchrun with WORLD_SIZE > 1)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 in a single process)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 in a single process)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0, the only rank that writes files."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The one device rule of the package: ``"auto"`` is CUDA if available, else the CPU; others are taken as given.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.

    Raises:
        ConfigError: CUDA asked for on a machine without a usable CUDA device (says to pass ``device="cpu"``).
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = device if isinstance(device, torch.device) else torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} asks for CUDA, but torch finds no CUDA device on this machine "
                          f"(torch {torch.__version__}); pass device='cpu' to run on the CPU")
    return dev


def init(device: str = "auto") -> torch.device:
    """Start the process group if launched by torchrun and pick the device.

    Args:
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns:
        the ``torch.device`` this process trains on (``cuda:LOCAL_RANK`` under torchrun with CUDA).
    """
    device = str(resolve_device(device))
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    if launched and not is_distributed():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    if device.startswith("cuda") and is_distributed():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(device)


def all_gather_objects(obj):
    """List of ``obj`` from every rank (rank order); ``[obj]`` in a single process."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(values: dict[str, float]) -> dict[str, float]:
    """Average a dict of floats over ranks (for logging losses)."""
    if not is_distributed() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / world_size() for k, v in zip(keys, t.tolist())}
