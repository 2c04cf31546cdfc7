"""Old module paths of the flat layout (before the layer folders), kept importable.

``import animerec_bench.worker`` still works and gives the module at its new place
(``animerec_bench.execution.worker``), with a :class:`DeprecationWarning` naming it, so a
plugin or notebook written against the flat layout keeps running. ``animerec_bench.results``
and ``animerec_bench.plugins`` are packages now; their ``__init__`` forwards old names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

#: old module -> where it lives now
MOVED = {
    "animerec_bench.atomic": "animerec_bench.support.atomic",
    "animerec_bench.paths": "animerec_bench.support.paths",
    "animerec_bench.machine": "animerec_bench.support.machine",
    "animerec_bench.timing": "animerec_bench.support.timing",
    "animerec_bench.importer": "animerec_bench.data.importer",
    "animerec_bench.synth": "animerec_bench.data.synth",
    "animerec_bench.protocol": "animerec_bench.data.protocol",
    "animerec_bench.split_file": "animerec_bench.data.split_file",
    "animerec_bench.export": "animerec_bench.data.export",
    "animerec_bench.ranking": "animerec_bench.evaluation.ranking",
    "animerec_bench.significance": "animerec_bench.evaluation.significance",
    "animerec_bench.identity": "animerec_bench.results.identity",
    "animerec_bench.runner": "animerec_bench.execution.runner",
    "animerec_bench.worker": "animerec_bench.execution.worker",
    "animerec_bench.job_processes": "animerec_bench.execution.job_processes",
    "animerec_bench.ray_executor": "animerec_bench.execution.ray_executor",
    "animerec_bench.tuning": "animerec_bench.execution.tuning",
    "animerec_bench.progress": "animerec_bench.execution.progress",
    "animerec_bench.leaderboard": "animerec_bench.reports.leaderboard",
    "animerec_bench.plots": "animerec_bench.reports.plots",
    "animerec_bench.regression_gate": "animerec_bench.reports.regression_gate",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.new}; import it from there", DeprecationWarning, stacklevel=2)
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:
        """The module was executed under its new name already."""


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds an old flat-layout name and hands out the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())
