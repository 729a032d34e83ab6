"""Which ``pipeline`` modules a file imports: read from its source, nothing is imported."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pipeline_imports(path: Path) -> set[str]:
    """``pipeline/<module>.py`` paths imported anywhere in ``path`` (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pipeline":
                found |= {f"pipeline/{a.name}.py" for a in node.names}
            elif node.module.startswith("pipeline."):
                found.add(node.module.replace(".", "/") + ".py")
        elif isinstance(node, ast.Import):
            found |= {a.name.replace(".", "/") + ".py" for a in node.names if a.name.startswith("pipeline.")}
    return {m for m in found if (ROOT / m).exists()}


def closure(script: str) -> set[str]:
    """The script and every pipeline module it reaches through imports."""
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += sorted(pipeline_imports(ROOT / path) - seen)
    return seen
