"""support.threads.run_blocks: every row once, on the job's cores, errors raised; and
support.lazy.imports_refused."""

from __future__ import annotations

import sys
import threading

import pytest

from animerec_bench.support import threads
from animerec_bench.support.lazy import imports_refused


def test_every_row_once_in_blocks_of_the_given_size():
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work(a: int, b: int) -> None:
        with lock:
            seen.append((a, b))

    threads.run_blocks(work, 103, 10)
    assert sorted(seen) == [(a, min(a + 10, 103)) for a in range(0, 103, 10)]
    threads.run_blocks(work, 0, 10)  # nothing to do: no call
    assert len(seen) == 11


def test_blocks_run_on_as_many_threads_as_cores(monkeypatch):
    names: set[str] = set()
    barrier = threading.Barrier(2, timeout=30)

    def work(a: int, b: int) -> None:
        names.add(threading.current_thread().name)
        if a < 2:
            barrier.wait()  # the first two blocks meet: both threads are running at once

    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    threads.run_blocks(work, 8, 1)
    assert len(names) == 2 and all(n.startswith("animerec-bench-rows") for n in names)


def test_one_core_runs_the_blocks_in_order_in_this_thread(monkeypatch):
    order: list[tuple[int, int, str]] = []
    monkeypatch.setattr(threads, "usable_cores", lambda: 1)
    threads.run_blocks(lambda a, b: order.append((a, b, threading.current_thread().name)), 5, 2)
    here = threading.current_thread().name
    assert order == [(0, 2, here), (2, 4, here), (4, 5, here)]


def test_an_error_in_a_block_is_raised(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)

    def work(a: int, b: int) -> None:
        if a == 3:
            raise ValueError("block 3 failed")

    with pytest.raises(ValueError, match="block 3 failed"):
        threads.run_blocks(work, 10, 1)


def test_refused_imports_fail_inside_the_block_only(tmp_path, monkeypatch):
    (tmp_path / "optional_extra").mkdir()
    (tmp_path / "optional_extra" / "__init__.py").write_text("VALUE = 1\n")
    (tmp_path / "optional_extra" / "plot.py").write_text("VALUE = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("optional_extra", "optional_extra.plot"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with imports_refused("optional_extra"):
        with pytest.raises(ImportError, match="optional_extra"):
            import optional_extra.plot  # noqa: F401
        import json  # others import as ever
    assert json.dumps(1) == "1"
    import optional_extra.plot

    assert optional_extra.plot.VALUE == 2
    with imports_refused("optional_extra"):  # already imported: unaffected
        import optional_extra.plot as again
    assert again is optional_extra.plot



def test_blas_is_held_to_the_jobs_cores_inside_blas_limited(monkeypatch):
    """Inside the block BLAS's pool has the job's cores (here told 1), after it what it had."""
    import numpy as np
    from threadpoolctl import threadpool_info

    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS loaded
    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    monkeypatch.setattr(threads, "usable_cores", lambda: 1)
    with threads.blas_limited():
        inside = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert inside and all(n == 1 for n in inside)
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before
