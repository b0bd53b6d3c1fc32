"""The import graph of skinart, read with ast (imports inside functions included): no cycle, every import to the
same or a lower layer of ARCHITECTURE.md's module table, every module in that table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "skinart").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict) -> set[str]:
    """The skinart modules `name` imports anywhere in its file (a package's own children importing it do not count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module
            targets |= {base} | {f"{base}.{a.name}" for a in node.names}
    resolved = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name and not name.startswith(target + "."):
            resolved.add(target)
    return resolved


def layers() -> dict[str, int]:
    rows = re.findall(r"^\| `(skinart[\w.]*)` \| (\d) \|", (ROOT / "ARCHITECTURE.md").read_text(), re.MULTILINE)
    return {module: int(layer) for module, layer in rows}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_no_import_cycles():
    edges, state, cycles = graph(), {}, []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == [], " ; ".join(" → ".join(c) for c in cycles)


def test_every_module_has_a_layer_and_imports_only_downward():
    table, edges = layers(), graph()
    assert set(edges) - set(table) == set(), "add these modules to ARCHITECTURE.md's table"
    assert set(table) - set(edges) == set(), "ARCHITECTURE.md names modules that do not exist"
    upward = [f"{a} ({table[a]}) imports {b} ({table[b]})" for a, targets in edges.items() for b in targets if table[b] > table[a]]
    assert upward == []


def test_no_package_spans_two_layers():
    """A package sits at one layer with everything in it, so a folder shows a layer (skinart itself holds them all)."""
    table, known = layers(), modules()
    packages = [name for name, path in known.items() if path.name == "__init__.py" and name != "skinart"]
    assert packages, "no packages found"
    spanning = {package: sorted({table[m] for m in known if m == package or m.startswith(package + ".")})
                for package in packages}
    assert {package: found for package, found in spanning.items() if len(found) > 1} == {}


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "skinart" / "low.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from skinart.high import g  # hidden in a function\n    return g\n")
    assert imports("skinart.low", module, {"skinart.low": module, "skinart.high": module}) == {"skinart.high"}
