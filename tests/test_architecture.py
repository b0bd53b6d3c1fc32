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
    """Module -> the modules it imports; importing `a.b.c` from outside package `a.b` also runs `a.b`'s __init__ (and
    `a`'s), so those count as imported too: a cycle through a package's __init__ is a cycle."""
    known = modules()
    edges = {name: imports(name, path, known) for name, path in known.items()}
    for name, targets in edges.items():
        for target in list(targets):
            parent = target.rpartition(".")[0]
            while parent and parent != "skinart" and not (name + ".").startswith(parent + "."):
                if parent in known:
                    targets.add(parent)
                parent = parent.rpartition(".")[0]
    return edges


def summary() -> dict[str, int]:
    """The summary table of ARCHITECTURE.md: each top-level module or package of skinart and its layer."""
    found = {}
    for layer, cell in re.findall(r"^\| (\d) [a-z ]+\| (.*?) \|", (ROOT / "ARCHITECTURE.md").read_text(), re.MULTILINE):
        for name in re.findall(r"`(\w+)/?`", cell):
            found[f"skinart.{name}"] = int(layer)
    return found


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


def test_the_summary_table_lists_every_top_level_module_at_its_layer():
    table, top = layers(), {name for name in modules() if name.count(".") == 1}
    listed = summary()
    assert sorted(top - set(listed)) == [], "add these to ARCHITECTURE.md's summary table (layer, folder or module)"
    assert sorted(set(listed) - top) == [], "ARCHITECTURE.md's summary table names modules that do not exist"
    assert {name: layer for name, layer in listed.items() if table.get(name) != layer} == {}, "summary and module table disagree"


def test_a_cycle_through_a_package_init_is_caught(tmp_path):
    """`pkg/__init__` importing `low`, which imports `pkg.leaf`: loading `low` first runs `pkg/__init__` half-way."""
    files = {"skinart.pkg": "__init__", "skinart.pkg.leaf": "leaf", "skinart.low": "low"}
    paths = {}
    for name, stem in files.items():
        path = tmp_path / (name.replace(".", "/") + ("/__init__.py" if stem == "__init__" else ".py"))
        path.parent.mkdir(parents=True, exist_ok=True)
        paths[name] = path
    paths["skinart.pkg"].write_text("from skinart.low import f\n")
    paths["skinart.pkg.leaf"].write_text("x = 1\n")
    paths["skinart.low"].write_text("from skinart.pkg.leaf import x\n")
    edges = {name: imports(name, path, paths) for name, path in paths.items()}
    assert "skinart.pkg" not in edges["skinart.low"]  # the plain import graph has no cycle
    global modules
    real, modules = modules, lambda: paths
    try:
        assert "skinart.pkg" in graph()["skinart.low"]  # with the __init__ edge it does
    finally:
        modules = real


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
