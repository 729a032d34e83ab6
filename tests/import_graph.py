"""Which ``pipeline`` files a file imports: read from its source, nothing is imported."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_files(dotted: str) -> set[str]:
    """The files Python runs to import ``dotted``: every package ``__init__.py`` on the way
    and the module itself (``pipeline.train.loop`` -> ``pipeline/__init__.py``,
    ``pipeline/train/__init__.py``, ``pipeline/train/loop.py``)."""
    parts = dotted.split(".")
    files = {"/".join(parts[:i]) + "/__init__.py" for i in range(1, len(parts) + 1)}
    files.add("/".join(parts) + ".py")
    return {f for f in files if (ROOT / f).exists()}


def pipeline_imports(path: Path) -> set[str]:
    """``pipeline/...`` files imported anywhere in ``path`` (also inside functions), package
    ``__init__.py`` files included; ``from pipeline.pkg import module`` counts the module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pipeline" or node.module.startswith("pipeline."):
                found |= module_files(node.module)
                found |= set().union(*(module_files(f"{node.module}.{a.name}") for a in node.names))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("pipeline."):
                    found |= module_files(a.name)
    return found


def closure(script: str) -> set[str]:
    """The script and every pipeline file it reaches through imports."""
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += sorted(pipeline_imports(ROOT / path) - seen)
    return seen
