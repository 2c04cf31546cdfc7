"""The package's layers (docs/architecture.md): no module imports a layer above its own.

Every ``import``/``from`` of ``animerec_bench`` in every module, at the top or inside a function,
is checked; only the plugin registry's loading of ``builtin`` by name (a string) is dynamic.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "animerec_bench"

#: Low to high. A module may import its own layer and the layers before it.
LAYERS = [
    ("support", {"errors", "_moved", "support"}),
    ("contract", {"metrics", "tasks", "model", "dataset", "hookspecs"}),
    ("data", {"data"}),
    ("plugins", {"plugins"}),
    ("evaluation", {"evaluation"}),
    ("builtin", {"builtin"}),
    ("results", {"results"}),
    ("execution", {"execution"}),
    ("reports", {"reports"}),
    ("api", {"testing", "api"}),
    ("commands", {"commands"}),
    ("cli", {"cli"}),
]
RANK = {part: rank for rank, (_, parts) in enumerate(LAYERS) for part in parts}
ROOT = "animerec_bench"


def _layer_of(module: str) -> int:
    """The layer rank of a dotted module name inside the package."""
    first = module.split(".")[1] if "." in module else ""
    if first not in RANK:
        raise AssertionError(f"{module}: in no layer of {LAYERS} (add it to docs/architecture.md and this test)")
    return RANK[first]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != ROOT:
            out.append((name, path))
    return out


def _imports(path: Path, name: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import of the package in ``path``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == ROOT]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == ROOT:
                names = [f"{base}.{a.name}" for a in node.names] if base == ROOT else [base]
                found += [(node.lineno, n) for n in names]
    return found


@pytest.mark.parametrize("name,path", _modules(), ids=[n for n, _ in _modules()])
def test_no_module_imports_a_layer_above_its_own(name, path):
    own = _layer_of(name)
    above = []
    for line, imported in _imports(path, name):
        if imported in (f"{ROOT}.__version__", f"{ROOT}.hookimpl"):
            continue  # the package root re-exports these two from support/ and hookspecs
        if imported == ROOT or _layer_of(imported) > own:
            above.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    assert not above, "imports of a higher layer:\n" + "\n".join(above)


def test_every_package_folder_is_a_layer():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(RANK), f"folders in no layer: {sorted(folders - set(RANK))}"
