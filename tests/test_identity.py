"""The code fingerprint ignores where imports come from, comments and layout, and nothing else."""

from animerec_bench.results.identity import code_fingerprint, normalised_source

from .conftest import imported_after

BEFORE = '''"""A model."""
import numpy as np
from animerec_bench.ranking import evaluate


def fit(x):
    for row in x:
        total = np.sum(row)
    return total  # the last row's sum
'''


def test_moving_imports_comments_and_spacing_keep_the_fingerprint():
    moved = BEFORE.replace("from animerec_bench.ranking import evaluate",
                           "from animerec_bench.evaluation.ranking import (\n    evaluate,\n)")
    moved = moved.replace("# the last row's sum", "").replace("np.sum(row)", "np.sum( row )")
    assert normalised_source(moved) == normalised_source(BEFORE)


def test_a_change_of_code_or_of_block_structure_changes_the_fingerprint():
    assert normalised_source(BEFORE.replace("np.sum", "np.mean")) != normalised_source(BEFORE)
    dedented = BEFORE.replace("        total = np.sum(row)\n    return", "        total = np.sum(row)\n        return")
    assert normalised_source(dedented) != normalised_source(BEFORE)  # return moved into the loop


def test_a_builtin_models_fingerprint_records_its_method():
    from animerec_bench.builtin.ease import EASE

    code = code_fingerprint(EASE)
    assert code["kind"] == "source" and code["method"] == "tokens-without-imports"
    assert len(code["sha256"]) == 64


def test_an_edit_is_seen_by_the_same_process_even_at_the_same_size_and_time(tmp_path):
    """The fingerprint of a file is remembered by its bytes (a board asks for each result's module),
    so an edit that keeps the file's size and modification time still counts; a CRLF copy, which
    ``read_text`` reads as LF, does not."""
    import os

    from animerec_bench.results import identity

    path = tmp_path / "model.py"
    path.write_text(BEFORE)
    before = identity._sha256_file(path)
    stamp = os.stat(path).st_mtime_ns
    path.write_text(BEFORE.replace("np.sum", "np.max"))  # same length
    os.utime(path, ns=(stamp, stamp))
    assert identity._sha256_file(path) != before
    path.write_bytes(BEFORE.replace("\n", "\r\n").encode())
    assert identity._sha256_file(path) == before
    result = {"identity": {"parts": {"code": {"kind": "source", "module": "m", "sha256": before, "file": str(path)}}}}
    assert not identity.stale(result)
    path.write_text(BEFORE.replace("np.sum", "np.min"))
    assert identity.stale(result)


def test_the_fingerprint_covers_the_builtin_modules_a_model_imports_and_theirs():
    """kernel-tower is two-tower and feature-kernel: their modules are in its ``code.uses``, and
    two-tower's own building blocks with them; harness modules are not."""
    from animerec_bench.builtin.kernel_tower import KernelTower
    from animerec_bench.results import identity

    code = code_fingerprint(KernelTower)
    uses = code["uses"]
    for module in ("two_tower", "content", "sparse_optim", "keras_backend"):  # sparse_optim: via two_tower
        assert uses[f"animerec_bench.builtin.{module}"] == identity._sha256_file(
            identity._module_file(f"animerec_bench.builtin.{module}"))
    assert "animerec_bench.builtin.kernel_tower" not in uses
    assert all(name.startswith("animerec_bench.builtin.") for name in uses)


def test_a_change_to_a_used_module_makes_the_result_stale(tmp_path):
    """A loose plugin file that imports ``ease`` lazily, inside a function: ``ease`` and what it
    imports are covered; a recorded sha256 that no longer matches the module marks the result stale."""
    from animerec_bench.results import identity

    path = tmp_path / "uses_ease.py"
    path.write_text(BEFORE + "\n\ndef later():\n    from animerec_bench.builtin.ease import EASE\n    return EASE\n")
    uses = identity.uses("animerec_bench_plugins.uses_ease", str(path))
    assert set(uses) == {"animerec_bench.builtin.ease", "animerec_bench.builtin.gram_inverse",
                         "animerec_bench.builtin.positives"}
    code = {"kind": "source", "module": "animerec_bench_plugins.uses_ease", "file": str(path),
            "sha256": identity._sha256_file(path), "uses": uses}
    assert not identity.stale({"identity": {"parts": {"code": code}}})
    edited = {**uses, "animerec_bench.builtin.positives": "0" * 64}  # as if positives.py changed since
    assert identity.stale({"identity": {"parts": {"code": {**code, "uses": edited}}}})
    older = {k: v for k, v in code.items() if k != "uses"}  # a result from before `uses` was recorded
    assert not identity.stale({"identity": {"parts": {"code": older}}})


def test_finding_the_used_modules_imports_none_of_them():
    """``from animerec_bench.builtin.two_tower import TwoTower`` names a class: telling it from a
    module must not import ``two_tower`` (and Keras with it) in a process that only fingerprints."""
    code = ("from animerec_bench.results import identity\n"
            "from pathlib import Path\nimport animerec_bench.builtin as b\n"
            "f = Path(b.__file__).parent / 'kernel_tower.py'\n"
            "used = identity.uses('animerec_bench.builtin.kernel_tower', str(f))\n"
            "assert 'animerec_bench.builtin.two_tower' in used, used\n"
            "import sys; loaded = [m for m in sys.modules if m.startswith('animerec_bench.builtin.')]\n"
            "assert not loaded, loaded")
    assert imported_after(code, ("keras",)) == []
