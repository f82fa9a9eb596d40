"""Under ``torchrun --nproc_per_node N``: start an NCCL process group (gloo without CUDA), all_reduce one tensor and
check the sum, as the training runs' process groups do (``detpretrain.distributed``). Prints one line per rank."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def main() -> None:
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    x = torch.ones(1, device=device) * (dist.get_rank() + 1)
    dist.all_reduce(x)
    expected = dist.get_world_size() * (dist.get_world_size() + 1) / 2
    dist.barrier()
    print(f"rank {dist.get_rank()}/{dist.get_world_size()} backend {dist.get_backend()} device {device}: "
          f"all_reduce {x.item():g} (expected {expected:g}) {'ok' if x.item() == expected else 'WRONG'}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
