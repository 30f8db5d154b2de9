"""torch.distributed glue: process group from torchrun's environment, rank queries, reductions.

s4seg has no launcher of its own: start the script with ``torchrun`` and call
:func:`init_distributed` before building the :class:`~s4seg.Trainer`.

    torchrun --nproc_per_node 4 examples/s4gan_synthetic.py                  # one node
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d \\
        --rdzv_endpoint HOST:29500 examples/s4gan_synthetic.py               # on each node
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 outside a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Rank 0 logs, writes checkpoints and writes reports."""
    return rank() == 0


def init_distributed(backend: str | None = None) -> torch.device:
    """Join the process group that ``torchrun`` describes in the environment.

    Uses nccl when CUDA is available and gloo otherwise; each process takes the
    GPU of its ``LOCAL_RANK``. Without torchrun's variables this is a no-op that
    returns the default device, so one script serves both.

    Returns:
        The device this process should train on.
    """
    cuda = torch.cuda.is_available()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return torch.device("cuda" if cuda else "cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return torch.device("cuda", local_rank) if cuda else torch.device("cpu")


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum of ``t`` over all ranks (``t`` itself when not distributed); out of place."""
    if not is_distributed():
        return t
    out = t.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather_cat(t: Tensor) -> Tensor:
    """Concatenate equally sized 1-d tensors of every rank along dim 0."""
    if not is_distributed():
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)
