"""The suite's own guards can fail: conftest.py's HOME guard fires on a write under HOME, and no test module imports
conftest (a second import, as module `tests.conftest`, re-ran its top and pointed HOME at a folder the guard does not
watch, so the guard could not fire)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def test_no_test_module_imports_conftest():
    importers = []
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(name.split(".")[-1] == "conftest" for name in names):
                importers.append(path.name)
    assert importers == [], f"import helpers, not conftest: {importers}"


def test_the_home_guard_fires_on_a_write_under_home(tmp_path):
    """The suite's conftest, run on one test that writes a file under $HOME: the session fails naming the file."""
    for name in ("conftest.py", "helpers.py"):
        shutil.copy(TESTS / name, tmp_path / name)
    (tmp_path / "test_stray.py").write_text(
        "import os, pathlib\n\n\ndef test_writes_under_home():\n"
        "    pathlib.Path(os.environ['HOME'], 'stray.txt').write_text('left behind')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "SKINART_CACHE", "SKINART_DATA")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0, done.stdout
    assert "written under $HOME: ['stray.txt']" in done.stdout, done.stdout[-2000:]
