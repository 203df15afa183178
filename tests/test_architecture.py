"""The package's layers, as docs/architecture.md draws them: imports point down, never around.

Every `import makemore_lab...` (module level or inside a function) is read from the source;
each module belongs to one layer, and may import its own package or lower layers only. The map
names every module, so a move or a rename cannot leave it stale.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "src" / "makemore_lab"
# Low to high: a module may import from its own package or from a lower layer.
LAYERS = [
    {"errors", "atomic", "validation", "job_state"},
    {"data"},
    {"network"},
    {"config", "runs", "dynamics"},
    {"training"},
    {"stacked"},
    {"finish"},
    {"train"},
    {"launcher", "reports"},
    {"cli"},
]
# The public names kept for configs and checkpoints written before the subpackages: each only
# re-exports a class from its package.
ALIASES = {"model", "optim", "checkpointing", "progress", "sweep_report"}
ALIAS_FILES = {f"{alias}.py" for alias in ALIASES}


def modules() -> dict[str, Path]:
    """Dotted module name (without `makemore_lab.`) -> file."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports_of(path: Path) -> set[str]:
    """The makemore_lab modules a file imports (`from makemore_lab.x import y` names x or x.y)."""
    known = modules()
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for name in names:
            if name.startswith("makemore_lab."):
                name = name.removeprefix("makemore_lab.")
                if name in known:
                    found.add(name)
    return found


def layer(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, names in enumerate(LAYERS) if top in names)


def package(module: str) -> str:
    """A module's package; the base modules of layer 0 count as one."""
    return "base" if layer(module) == 0 else module.split(".")[0]


def test_every_module_has_a_layer_and_imports_only_its_package_or_lower_layers() -> None:
    wrong = []
    for module, path in modules().items():
        if module in ALIASES or module == "__init__":
            continue
        for imported in imports_of(path):
            if imported in ALIASES:
                wrong.append(f"{module} imports the alias {imported}")
                continue
            same_package = package(imported) == package(module)
            if not same_package and layer(imported) >= layer(module):
                wrong.append(f"{module} (layer {layer(module)}) imports {imported}")
    assert wrong == []


def test_no_two_modules_import_each_other_in_a_circle() -> None:
    graph = {m: imports_of(p) - {m} for m, p in modules().items()}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        seen[module] = 1
        for other in graph[module]:
            assert seen.get(other) != 1, " -> ".join([*path, module, other])
            if other not in seen:
                visit(other, [*path, module])
        seen[module] = 2

    for module in graph:
        if module not in seen:
            visit(module, [])


def test_the_aliases_only_re_export_the_public_names() -> None:
    for alias in ALIASES:
        tree = ast.parse((PACKAGE / f"{alias}.py").read_text())
        body = [n for n in tree.body if not isinstance(n, ast.Expr)]  # the docstring
        assert isinstance(body[0], ast.ImportFrom) and len(body) == 2, alias  # import, __all__


def named_in_diagram(diagram: str) -> set[str]:
    """The files the diagram names: `pkg/  a.py, b.py` gives pkg/a.py and pkg/b.py."""
    named = set()
    for line in diagram.splitlines():
        package = None
        for token in re.findall(r"\w+/|\w+\.py", line):
            if token.endswith("/"):
                package = token
            else:
                named.add(f"{package}{token}" if package else token)
    return named


def test_the_map_names_every_module_and_only_modules_that_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    files = {
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" and str(p.relative_to(PACKAGE)) not in ALIAS_FILES
    }
    named = named_in_diagram(text.split("```")[1])
    assert files - named == set(), "modules missing from docs/architecture.md"
    assert named - files == set(), "docs/architecture.md names modules that do not exist"
    for path in re.findall(r"`((?:\w+/)+\w+\.py)", text):  # the prose's paths
        if not path.startswith(("tests/", "src/")):
            assert (PACKAGE / path).is_file(), f"docs/architecture.md names {path}"
