"""The plugin author's guide, docs/plugins.md, stays true: every hook documented, the example
plugin loads and conforms, and the commands and snippets it shows exist and parse."""

from __future__ import annotations

import inspect
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from animerec_bench import hookspecs
from animerec_bench.cli import cli
from animerec_bench.plugins.loader import ENTRY_POINT_GROUP
from animerec_bench.plugins.registry import load_registry

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
HOOK_HEADING = re.compile(r"^### (\w+)\(", re.MULTILINE)
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
               if hasattr(fn, "animerec_bench_spec"))


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", DOC, re.MULTILINE | re.DOTALL)


def example_plugin() -> str:
    """The first Python block after the ``<!-- plugin-example -->`` marker."""
    found = re.search(r"<!-- plugin-example -->\s*```python\n(.*?)^```$", DOC, re.MULTILINE | re.DOTALL)
    assert found, "docs/plugins.md lost its <!-- plugin-example --> code block"
    return found.group(1)


def test_there_are_hooks():
    assert HOOKS == ["register_datasets", "register_models"]


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_are_documented(hook):
    assert hook in HOOK_HEADING.findall(DOC), f"hook {hook!r} has no '### {hook}(...)' section in {DOC_PATH}"


def test_documented_hooks_exist():
    assert set(HOOK_HEADING.findall(DOC)) <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_documented_signature_matches_the_spec(hook):
    args = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"### {hook}({', '.join(args)})" in DOC


def test_example_plugin_loads_and_conforms(tmp_path, monkeypatch):
    monkeypatch.delenv("ANIMEREC_BENCH_DISABLE_PLUGINS", raising=False)
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "item_average.py").write_text(example_plugin(), encoding="utf-8")
    reg = load_registry(folder)
    assert reg.errors == []
    entry = reg.model("item-average")
    assert (entry.plugin, entry.plugin_version) == ("item_average", "0.1.0")
    assert entry.cls.tasks == ("rating", "interaction")

    testing = pytest.importorskip("animerec_bench.testing")
    testing.check_model(entry.cls)
    testing.check_model(entry.cls, shrinkage=0.0)


def test_example_test_file_runs(tmp_path, monkeypatch):
    """The check_model snippet, run as written against the example plugin."""
    testing = pytest.importorskip("animerec_bench.testing")
    snippet = next(b for b in code_blocks("python") if "check_model(" in b and "def test_" in b)
    (tmp_path / "item_average.py").write_text(example_plugin(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {}
    exec(compile(snippet, "docs/plugins.md", "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
    assert len(tests) == 2 and namespace["check_model"] is testing.check_model
    for test in tests:
        test()


def test_pyproject_snippet_declares_the_entry_point():
    (block,) = [b for b in code_blocks("toml")]
    meta = tomllib.loads(block)
    assert list(meta["project"]["entry-points"]) == [ENTRY_POINT_GROUP]
    assert meta["project"]["entry-points"][ENTRY_POINT_GROUP] == {"item_average": "item_average"}
    assert "animerec-bench" in meta["project"]["dependencies"]


def test_shell_commands_in_the_doc_exist():
    """Every `animerec-bench ...` line uses a real command and real options."""
    lines = [line for block in code_blocks("bash") for line in block.splitlines()
             if "animerec-bench " in line]
    assert any("run -m item-average --seeds 3" in line for line in lines)
    assert any(line.strip() == "animerec-bench leaderboard" for line in lines)
    for line in lines:
        words = shlex.split(line)
        words = words[words.index("animerec-bench") + 1:]
        command = cli.commands.get(words[0])
        assert command is not None, f"docs/plugins.md: no command {words[0]!r} in {line!r}"
        options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        for word in words[1:]:
            if word.startswith("-"):
                assert word in options, f"docs/plugins.md: {words[0]} has no option {word!r} ({line!r})"
