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

import pytest

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


@pytest.mark.parametrize("first_line", ["", "from tests.conftest import invoke  # noqa: F401\n"], ids=["plain", "conftest-imported-again"])
def test_the_home_guard_fires_on_a_write_under_home(tmp_path, first_line):
    """The suite's conftest, run on one test that writes a file under $HOME: the session fails naming the file. Also
    when the test module imports conftest a second time, as the old `from tests.conftest import invoke` did (before
    conftest set HOME once per process, that run passed: the write went to a folder the guard did not watch)."""
    (tmp_path / "tests").mkdir()
    for name in ("conftest.py", "helpers.py"):
        shutil.copy(TESTS / name, tmp_path / "tests" / name)
    (tmp_path / "tests" / "test_stray.py").write_text(
        f"import os, pathlib\n{first_line}\n\ndef test_writes_under_home():\n"
        "    pathlib.Path(os.environ['HOME'], 'stray.txt').write_text('left behind')\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("HOME", "SKINART_CACHE", "SKINART_DATA", "SKINART_SUITE_HOME", "SKINART_SUITE_OWNER", "PYTEST_XDIST_WORKER")}
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")  # its HOME, with the stray file, and its cache: in this test's folder
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0, done.stdout
    assert "written under $HOME: ['stray.txt']" in done.stdout, done.stdout[-2000:]
