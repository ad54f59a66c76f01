"""An import-linter contract type for `make lint`: the built-in layers contract, with the imports of the project's
top-level modules in the graph.

import-linter builds its graph from packages only: a top-level module (longlamp.py, longlamp_tasks.py, ...) is in it
only as something imported (`include_external_packages`), never as an importer, so a top-level module importing a
higher layer would go unseen. This contract first adds the imports of the modules listed in `modules` (every
absolute import in the file, those inside functions included, as grimp reads packages), then checks the layers.
pyproject.toml names it in `contract_types`; lint-imports puts the repository root on sys.path, so it is found.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from importlinter.contracts.layers import LayersContract
from importlinter.domain import fields


def imported_names(path: Path) -> list[tuple[str, int]]:
    """(dotted name, line) of each absolute import in a file; `from a import b` gives a.b (a module or a name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def nearest_module(graph, name: str) -> str | None:
    """The module of the graph that `name` is, or is inside (a name imported from a module: the module)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in graph.modules:
            return ".".join(parts)
        parts.pop()
    return None


class LayersWithModulesContract(LayersContract):
    """`layers`, where the top-level modules in `modules` are importers too."""

    type_name = "layers_with_modules"

    modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool):
        for module in self.modules:  # type: ignore[attr-defined]
            path = Path(importlib.util.find_spec(module).origin)
            lines = path.read_text(encoding="utf-8").splitlines()
            for name, line in imported_names(path):
                imported = nearest_module(graph, name)
                if imported is not None and imported != module:
                    graph.add_import(importer=module, imported=imported, line_number=line,
                                     line_contents=lines[line - 1].strip())
        return super().check(graph, verbose)
