"""Would `module:attr` import with this interpreter? A static check: standard library only, nothing imported.

The module must be found (importlib.util.find_spec), define `attr` at top level, and every module it imports at
top level must be found too. Run in-process for the trainer's interpreter, and by file path under .venv-harbor's
Python 3.12 for Harbor's agent classes (`python importcheck.py module:attr ...`: prints one JSON object
{path: null | reason}). It is cheap (no import: verl or LiteLLM would take seconds), and it catches what breaks a
launch: a module or class that is not there, or a dependency missing from that environment. The guardrail
`scaffold-imports` (rules/scaffold_imports.py) uses it, so the plan reads LiveRL's scaffold (the top layer,
liverl/scaffold/) as files and never imports it.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import json
import sys


def _spec(name: str):
    """find_spec without importing parent packages (find_spec("a.b") would run a/__init__.py: seconds for verl)."""
    top, *rest = name.split(".")
    try:
        spec = importlib.util.find_spec(top)
        for part in rest:
            if spec is None or not spec.submodule_search_locations:
                return None
            spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
        return spec
    except (ImportError, ValueError):
        return None


def _found(name: str) -> bool:
    return name in sys.modules or _spec(name) is not None


def _imports(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def _defines(tree: ast.Module, attr: str) -> bool:
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == attr:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == attr for t in targets):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name) == attr for a in node.names):
            return True
    return False


def problem(path: str) -> str | None:
    """None when `module:attr` (or `module.attr`) would import here, else why not."""
    module, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module or not attr:
        return f"not of the form module:Class (got: {path})"
    if not _found(module):
        return f"module {module} is not installed in {sys.executable}"
    spec = _spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None  # a compiled or namespace module: found is all that can be said without importing it
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    if not _defines(tree, attr):
        return f"{module} ({spec.origin}) defines no {attr}"
    missing = [m for m in _imports(tree) if not _found(m)]
    if missing:
        return f"{module} imports {', '.join(missing)}, not installed in {sys.executable}"
    return None


if __name__ == "__main__":
    print(json.dumps({p: problem(p) for p in sys.argv[1:]}))
