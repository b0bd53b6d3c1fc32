"""`skinart report RUN [RUN ...] --out DIR` (issue 26): the runs a new user makes by hand (train, evaluate, attack), not a
recipe, reported; a checkpoint brings the runs made from it that lie beside it; a 20-image run says it is too small for
an interval; a bad argument is one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import invoke


def _ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return result


@pytest.fixture(scope="module")
def runs(trained, tmp_path_factory):
    """A copy of the trained checkpoint with, beside it, a clean evaluation, FGSM at 2/255 and 8/255 on the 200 test
    images, FGSM at 8/255 on 20 of them, a run made from other weights once at the checkpoint's path and a folder that
    is no run."""
    root = tmp_path_factory.mktemp("hand-runs")
    cnn = root / "cnn"
    shutil.copytree(trained, cnn)
    _ok("evaluate", "--checkpoint", cnn, "--out", root / "cnn-clean", "--device", "cpu")
    for eps, name, extra in (("2/255", "cnn-fgsm2", ()), ("8/255", "cnn-fgsm8", ()), ("8/255", "cnn-fgsm20", ("--max-samples", 20))):
        _ok("attack", "--method", "fgsm", "--checkpoint", cnn, "--eps", eps, "--out", root / name, "--device", "cpu", *extra)
    shutil.copytree(root / "cnn-fgsm2", root / "old-fgsm")  # as if made before the checkpoint was trained again in place
    config = json.loads((root / "old-fgsm" / "config.json").read_text())
    config["checkpoint"]["weights_sha256"] = "0" * 64
    (root / "old-fgsm" / "config.json").write_text(json.dumps(config))
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("not a run")
    return root


def _table(md: str, title: str) -> list[list[str]]:
    """The cells of a markdown table, header first."""
    lines = md.split(f"## {title}", 1)[1].split("\n\n")[1].splitlines()
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines if not line.startswith("|---")]


def test_a_checkpoint_is_reported_with_the_runs_made_from_it_beside_it(runs, tmp_path):
    result = _ok("report", runs / "cnn", "--out", tmp_path / "report", "--bootstrap", 200)
    assert result.stdout.strip() == f"{tmp_path / 'report'}/report.md, report.html: 4 rows"
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [r["task"] for r in report["rows"]] == ["cnn-clean", "cnn-fgsm2", "cnn-fgsm20", "cnn-fgsm8"]
    assert {r["model"] for r in report["rows"]} == {"cnn"}
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Left out: old-fgsm (made from other weights" in md and "notes" not in md
    performance = {line[0]: line for line in _table(md, "Model performance (multi-class)")}
    assert performance["run"][5] == "accuracy [95% CI]" and performance["cnn-fgsm20"][4] == "20"
    assert performance["cnn-fgsm20"][5].endswith("*") and "[" not in performance["cnn-fgsm20"][5]  # 20 images: no interval
    assert "[" in performance["cnn-fgsm8"][5] and "too small for an interval, fewer than 50 images" in md
    assert "## Model performance (multi-class) — on dermamnist test" in md  # one data set for every row: the title says it
    # an ε grid of one attack on one model: the robustness curves, with the figures and per-run figures linked from --out
    assert "### Robustness curves" in md and (tmp_path / "report" / "report_figures" / "robustness.png").stat().st_size > 0
    assert "](../" in md.split("## Per-run figures")[1]
    assert not list(runs.rglob("report.md"))  # nothing written into the runs it read


def test_a_run_too_small_for_an_interval_says_so_once_and_leaves_out_empty_sections(runs, tmp_path):
    result = _ok("report", runs / "cnn-fgsm20", "--out", tmp_path / "small")
    assert result.stdout.strip().endswith(": 1 row")
    md = (tmp_path / "small" / "report.md").read_text()
    assert "[95% CI]" not in md  # no row has an interval: no column promises one
    assert _table(md, "Health (binary")[1][5].endswith("*")  # the FNR of 20 images
    assert "## Figures" not in md and not (tmp_path / "small" / "report_figures").exists()


def test_runs_listed_by_hand_are_reported_alone(runs, tmp_path):
    _ok("report", runs / "cnn-fgsm8", runs / "cnn-clean", "--out", tmp_path / "two")
    report = json.loads((tmp_path / "two" / "report.json").read_text())
    assert [r["task"] for r in report["rows"]] == ["cnn-fgsm8", "cnn-clean"]  # no checkpoint given: nothing found beside


@pytest.mark.parametrize("args, message", [
    (["notes", "--out", "{tmp}/out"], "notes is neither a skinart run directory"),
    (["cnn"], "give --out DIR"),
    (["cnn", "--out", "{runs}/cnn-clean/report"], "is, contains or lies inside the input"),
    (["cnn", "--out", "{runs}"], "is, contains or lies inside the input"),
])
def test_a_bad_argument_is_one_line_and_writes_nothing(runs, tmp_path, args, message):
    before = sorted(runs.rglob("*"))
    args = [a.format(tmp=tmp_path, runs=runs) if "{" in a else (a if a.startswith("--") else runs / a) for a in args]
    result = invoke("report", *args)
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(runs.rglob("*")) == before and not (tmp_path / "out").exists()


def test_an_evaluation_of_the_validation_split_is_labelled_val_where_t_was_chosen(runs, tmp_path):
    """`evaluate --split val`: the threshold was chosen on these images, so its numbers at t test nothing; metrics.md,
    the report's rows, table titles and findings all say val."""
    _ok("evaluate", "--checkpoint", runs / "cnn", "--split", "val", "--out", tmp_path / "val", "--device", "cpu")
    markdown = (tmp_path / "val" / "metrics.md").read_text()
    assert "| val |" in markdown and "| test |" not in markdown and "the split the stored threshold was chosen on" in markdown
    shutil.copytree(runs / "cnn-fgsm8", tmp_path / "cnn-fgsm8")  # beside it: the report names runs below their shared folder
    _ok("report", tmp_path / "val", tmp_path / "cnn-fgsm8", "--out", tmp_path / "report", "--bootstrap", 0)
    md = (tmp_path / "report" / "report.md").read_text()
    val, test = "dermamnist val, where t was chosen", "dermamnist test"
    performance = {line[0]: line for line in _table(md, "Model performance (multi-class)")}
    assert performance["val"][4] == val and performance["cnn-fgsm8"][4] == test and performance["run"][4] == "data"
    assert f"## Model performance (multi-class) — on {val}, {test} (each row's data column)" in md
    findings = md.split("## Findings")[1].split("\n## ")[0]
    assert f"- cnn on {val}: clean accuracy" in findings and "t was chosen on these images" in findings
    assert f"on its 200 {test} images" in findings
