"""Imports go down, never up (issue 22, item 6; docs/style.md, lesson 11).

Each module of ``bench/`` belongs to one layer; a module may import its own layer and the layers
below it. The analysis sits low, just above the shared names and the workload: it turns rounds
and saved JSON into figures and words, so the report and the gate, which read JSON only, never
load a registry, a worker or a target. Imports under ``if TYPE_CHECKING:`` are annotations, not
data, and do not count.
"""

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

# Bottom to top. A module takes the layer of its longest matching prefix.
LAYERS = (
    ("bench.names",),
    ("bench.workload",),
    ("bench.analysis",),
    ("bench.clients",),
    ("bench.strategies",),
    ("bench.harness",),
    ("bench.targets",),
    ("bench.scenarios",),
    ("bench.reporting", "bench.report", "bench.compare"),
    (
        "bench.options",
        "bench.versions",
        "bench.interpreters",
        "bench.private_hooks",
        "bench.conftest",
        "bench.test_side_by_side",
        "bench",
    ),
)


def layer_of(module: str) -> int:
    matches = [
        (len(prefix), index)
        for index, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return max(matches)[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(BENCH.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def bench_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of a ``bench`` module that runs (not under TYPE_CHECKING)."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from bench.analysis import story`` imports the module bench.analysis.story.
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if (name == "bench" or name.startswith("bench.")) and not _type_checking_only(node, parents):
                found.append((node.lineno, name))
    return found


def upward_imports(module: str, source: str) -> list[str]:
    own = layer_of(module)
    return [
        f"{module}:{line} imports {name} (layer {layer_of(name)} above {own})"
        for line, name in bench_imports(source)
        if layer_of(name) > own
    ]


def test_no_module_of_bench_imports_from_a_layer_above_its_own():
    upward = [
        found
        for path in sorted(BENCH.rglob("*.py"))
        for found in upward_imports(module_name(path), path.read_text())
    ]
    assert upward == []


def test_the_names_module_is_the_ground_floor():
    assert bench_imports((BENCH / "names.py").read_text()) == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("bench.analysis.story", "from bench.scenarios import LADDER_MODELS\n"),
        ("bench.clients", "from bench.targets import DELAY\n"),
        ("bench.analysis.summary", "import bench.harness.memory\n"),
        ("bench.analysis.row_info", "def f():\n    from bench.strategies import Strategy\n"),
    ],
)
def test_an_upward_import_is_caught(module, source):
    """The check can fail: the imports this issue moved would each be found."""
    assert upward_imports(module, source)


def test_an_import_for_annotations_only_is_not_an_upward_import():
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench.strategies import Strategy\n"
    )
    assert upward_imports("bench.analysis.row_info", source) == []
