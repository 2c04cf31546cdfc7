"""Collect ``bench_*.py`` here (``pytest benchmarks``); the default test run never looks in this folder."""

from __future__ import annotations

import pytest


def pytest_collect_file(file_path, parent):
    # Files named on the command line are collected by pytest itself; do not add them twice.
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (the project's addopts, for the test suite) means no workers here: a timing
    shares the machine with nothing the benchmark run itself starts. ``-n N`` still works."""
    return 0
