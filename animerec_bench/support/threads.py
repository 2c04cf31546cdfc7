"""The job's cores: blocks of rows on them in threads, and BLAS held to them.

numpy releases the GIL inside its loops (sorts, ``take``, ``einsum``, ufuncs), so work that is
many numpy calls on disjoint rows — a kNN model's users, iALS's gathered products — runs on
every core of the job's allotment from threads, with no copies and no processes. A job pinned
to one core (``run --jobs N``) gets one thread: the blocks then run in order, in this thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from animerec_bench.support.machine import usable_cores


def run_blocks(work: Callable[[int, int], None], n: int, block: int) -> None:
    """``work(a, b)`` for each block ``[a, b)`` of ``range(n)`` (``block`` rows each, the last
    shorter), on as many threads as the job has cores; blocks are handed out as threads free up,
    so uneven blocks balance. ``work`` must write only its own rows. The first exception raised
    in a block is raised here once the blocks already started have ended; the rest never start."""
    spans = [(a, min(a + block, n)) for a in range(0, n, max(1, int(block)))]
    threads = min(max(1, usable_cores()), len(spans))
    if threads <= 1:
        for a, b in spans:
            work(a, b)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="animerec-bench-rows") as pool:
        futures = [pool.submit(work, a, b) for a, b in spans]
        try:
            for done in futures:
                done.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)  # blocks not yet started never start
            raise


def blas_limited():
    """A context holding BLAS's thread pool to the job's cores (more threads than cores lose
    badly on a shared machine); ``ease`` and the models built on it fit inside one."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=max(1, usable_cores()), user_api="blas")
