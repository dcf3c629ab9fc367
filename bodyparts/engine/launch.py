"""Multi-process launcher: Detectron2's ``launch`` on GPUs, gloo CPU processes without them.

Detectron2 v0.6's ``launch`` asserts CUDA and hard-codes NCCL. :func:`launch` keeps Detectron2's
behaviour on CUDA and, for ``device="cpu"`` (or no GPU), starts ``num_processes`` CPU processes
with the gloo backend, so the distributed code paths (DDP, samplers, evaluator gathering) run and
can be tested on any machine.
"""

import logging
import os
import socket
from datetime import timedelta
from typing import Callable, Optional, Tuple

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch as d2_launch
from detectron2.utils import comm

from ..compat import create_local_process_group

__all__ = ["launch", "DEFAULT_TIMEOUT"]

logger = logging.getLogger(__name__)
DEFAULT_TIMEOUT = timedelta(minutes=30)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(
    main_func: Callable,
    num_processes: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: Optional[str] = None,
    args: Tuple = (),
    device: str = "cuda",
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> None:
    """Run ``main_func(*args)`` in ``num_processes`` processes per machine.

    Args:
        num_processes: processes per machine (GPUs per machine on CUDA; ``--num-gpus``).
        device: the config's ``MODEL.DEVICE``; "cpu", or no CUDA available, selects gloo CPU
            processes.
        dist_url: "auto" picks a free local port (single machine only).
    """
    use_cpu = torch.device(device).type == "cpu" or not torch.cuda.is_available()
    if not use_cpu:
        return d2_launch(
            main_func,
            num_processes,
            num_machines,
            machine_rank,
            dist_url,
            args=args,
            timeout=timeout,
        )
    world_size = num_machines * num_processes
    if world_size <= 1:
        return main_func(*args)
    if dist_url in (None, "auto"):
        if num_machines != 1:
            raise ValueError(
                "dist_url 'auto' works on a single machine only; give --dist-url tcp://HOST:PORT"
            )
        dist_url = f"tcp://127.0.0.1:{_free_port()}"
    logger.info("Starting %d CPU processes (gloo) at %s", num_processes, dist_url)
    mp.start_processes(
        _cpu_worker,
        nprocs=num_processes,
        args=(main_func, world_size, num_processes, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",
    )


def _cpu_worker(
    local_rank, main_func, world_size, num_processes, machine_rank, dist_url, args, timeout
):
    # Share the cores between the processes instead of oversubscribing them.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_processes))
    rank = machine_rank * num_processes + local_rank
    dist.init_process_group(
        "gloo", init_method=dist_url, world_size=world_size, rank=rank, timeout=timeout
    )
    create_local_process_group(num_processes)
    comm.synchronize()
    main_func(*args)
