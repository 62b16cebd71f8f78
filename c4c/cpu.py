"""The CPU budget and c4c's one thread pool.

Every parallel piece of c4c (frame decoding of long videos, cropping, the backbone's chunks, the
decoders' interleaved beam steps, batch decoding processes) asks this module how many workers it
may use and runs its threads through `run_threads`.

Why one intra-op thread per worker: on a shared host, the threads of one torch op wait for each
other at every barrier and stall when another process takes a core (a 2-thread decoder measured
0.45 s -> 8 s), while independent single-threaded workers just slow down in proportion.

torch is imported inside the functions that need it, so that video decoding alone stays light.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

__all__ = ["available_cores", "thread_workers", "decode_processes", "run_threads", "parallel_map"]


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def thread_workers(n_jobs: int) -> int:
    """Worker threads for `n_jobs` independent pieces of work: the process's intra-op thread budget
    (`torch.get_num_threads()`, by default one per core), capped by the CPUs this process may run on
    and by n_jobs. A caller that set torch.set_num_threads(1) gets everything in its own thread."""
    import torch
    return max(1, min(torch.get_num_threads(), available_cores(), n_jobs))


def decode_processes() -> int:
    """Batch runs: one decoding process per core the models do not need, at most 4 (decoding is
    the lighter half of the work)."""
    return max(1, min(4, available_cores() - 1))


def run_threads(work: Callable[[int], None], workers: int, name: str = "c4c-worker",
                torch_threads: bool = True) -> None:
    """Run work(0) ... work(workers - 1) on their own threads and wait for all of them; the first
    exception raised in a worker is re-raised here. With `torch_threads`, each worker runs with one
    intra-op torch thread and inference mode on (both per-thread settings: the caller keeps its own)."""
    errors: list[BaseException] = []

    def body(k: int) -> None:
        try:
            if torch_threads:
                import torch
                torch.set_num_threads(1)
                with torch.inference_mode():
                    work(k)
            else:
                work(k)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            errors.append(e)

    threads = [threading.Thread(target=body, args=(k,), name=f"{name}-{k}", daemon=True) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def parallel_map(fn: Callable, items: Sequence, workers: int | None = None) -> list:
    """[fn(x) for x in items] on `workers` threads (default `thread_workers`), each with one
    intra-op thread and inference mode on. Exceptions propagate."""
    import torch
    workers = thread_workers(len(items)) if workers is None else max(1, min(workers, len(items)))
    if workers <= 1 and torch.get_num_threads() == 1:  # the caller is single-threaded already
        with torch.inference_mode():
            return [fn(x) for x in items]
    results: list = [None] * len(items)
    lock = threading.Lock()
    nxt = [0]
    failed = threading.Event()

    def work(_k: int) -> None:
        while not failed.is_set():
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(items):
                return
            try:
                results[i] = fn(items[i])
            except BaseException:
                failed.set()  # the other workers stop at their next item
                raise

    run_threads(work, workers)
    return results
