"""Recipes: validation with key paths, grid and reference expansion, end-to-end run + report on real data,
and resuming an interrupted run to the same numbers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from skinart.recipes.plan import load_recipe, plan
from helpers import invoke

RECIPES = sorted(Path(__file__).parent.parent.joinpath("recipes").glob("*.yaml"))


def tiny_recipe(root: Path) -> dict:
    return {
        "name": "tiny",
        "seed": 0,
        "data": {"loader": "dermamnist", "root": str(root)},
        "model": {"name": "skin_cnn"},
        "steps": [
            {"name": "train", "command": "train", "params": {"epochs": 2, "batch_size": 32, "lr": 3e-3, "balance": "weights", "device": "cpu"}},
            {"name": "clean", "command": "evaluate", "params": {"checkpoint": "train"}},
            {"name": "fgsm", "command": "attack", "params": {"checkpoint": "train", "method": "fgsm"}, "grid": {"eps": ["2/255", "8/255"]}},
            {"name": "llt", "command": "defend", "params": {"checkpoint": "train", "method": "llt"}},
            {"name": "rt", "command": "defend", "params": {"checkpoint": "train", "method": "retrain", "retrain_epochs": 1},
             "grid": {"ratio": [0.2, 0.6]}},
            {"name": "rt_fgsm", "command": "attack", "params": {"checkpoint": "rt", "method": "fgsm", "eps": "8/255"}},
            {"name": "llt_pgd", "command": "evaluate", "params": {"checkpoint": "llt", "attack": "pgd", "eps": "4/255", "max_iter": 3,
                                                                  "source_checkpoint": "train"}},
            {"name": "square", "command": "attack", "params": {"checkpoint": "train", "method": "square", "max_iter": 5, "max_samples": 20}},
            {"name": "flip", "command": "attack", "params": {"checkpoint": "train", "method": "poison-flip", "source_class": "nv",
                                                             "target_class": "bkl", "retrain_epochs": 1}, "grid": {"fraction": [0.2, 0.6]}},
            {"name": "report", "command": "report", "params": {"bootstrap": 200, "also_malignant": ["akiec", "bcc", "mel", "nv"]}},
        ],
        "reference": {"clean": {"accuracy": 0.70}, "fgsm@eps=8_255": {"accuracy": 0.5, "fnr": 0.4}},
    }


def write(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipes_validate(recipe, tmp_path):
    """Each as shipped; the one importing a model, with a state dict file where examples/outside_model.py writes its own
    (validation refuses a missing import file before the first step)."""
    imported = load_recipe(recipe).get("model", {}).get("import")
    if imported:
        save_file({"fc.weight": torch.zeros(7, 512)}, tmp_path / Path(imported).name)
    result = invoke("recipes", "validate", recipe, *(("--set", f"model.import={tmp_path / Path(imported).name}") if imported else ()))
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_a_recipe_importing_a_missing_file_is_refused_before_its_first_step(tmp_path):
    """quickstart-imported.yaml before examples/outside_model.py has written the model it imports."""
    missing = tmp_path / "theirs.pth"
    result = invoke("recipes", "validate", RECIPES[0].parent / "quickstart-imported.yaml", "--set", f"model.import={missing}")
    assert result.exit_code == 2 and f"--weights {missing} does not exist" in result.stderr, result.stderr


def test_a_worst_case_over_attacks_whose_default_eps_agree_needs_no_eps(derma_subset, tmp_path):
    """pgd and uap both default to 8/255: one budget, so no --eps is asked for (fgsm's 2/255 beside pgd's is: a row of
    test_bad_inputs)."""
    recipe = {"name": "same-eps", "data": {"loader": "dermamnist", "root": str(derma_subset)}, "model": {"name": "skin_cnn"},
              "steps": [{"name": "train", "command": "train", "params": {"epochs": 1}},
                        {"name": "worst", "command": "evaluate", "params": {"checkpoint": "train", "attack": ["pgd", "uap"],
                                                                            "threat": "white-box"}}]}
    result = invoke("recipes", "validate", write(tmp_path / "same-eps.yaml", recipe))
    assert result.exit_code == 0, result.output


def test_grid_and_references_expand_into_tasks(derma_subset):
    tasks = {t.name: t for t in plan(tiny_recipe(derma_subset))}
    assert list(tasks) == ["train", "clean", "fgsm@eps=2_255", "fgsm@eps=8_255", "llt", "rt@ratio=0.2", "rt@ratio=0.6",
                           "rt_fgsm@rt@ratio=0.2", "rt_fgsm@rt@ratio=0.6", "llt_pgd", "square", "flip@fraction=0.2",
                           "flip@fraction=0.6", "report"]
    # a reference to a grid step fans out over its members; recipe-wide settings reach every command that takes them
    assert tasks["rt_fgsm@rt@ratio=0.6"].uses == {"checkpoint": "rt@ratio=0.6"}
    argv = tasks["rt_fgsm@rt@ratio=0.6"].argv(Path("runs/t"))
    assert argv[:3] == ["attack", "--out", "runs/t/rt_fgsm@rt@ratio=0.6"]
    assert argv[argv.index("--checkpoint") + 1] == "runs/t/rt@ratio=0.6" and "--seed" in argv and "--data-root" in argv
    assert "--seed" not in tasks["llt"].argv(Path("r")) and tasks["rt@ratio=0.2"].params["ratio"] == 0.2
    paper = {t.name: t for t in plan(load_recipe(Path("recipes/paper-skin-cnn28.yaml")))}
    assert len(paper) == 65
    transfer = paper["rt_pgd_transfer@rt_mix@ratio=0.6"].argv(Path("r"))  # scored on the images the pgd step saved
    assert transfer[transfer.index("--adversarial-run") + 1] == "r/pgd" and "--max-iter" not in transfer


def test_set_overrides(tmp_path, derma_subset):
    path = write(tmp_path / "r.yaml", tiny_recipe(derma_subset))
    recipe = load_recipe(path, ["data.size=64", "steps.train.params.epochs=5", "model.name=resnet18"])
    assert recipe["data"]["size"] == 64 and recipe["steps"][0]["params"]["epochs"] == 5 and recipe["model"]["name"] == "resnet18"
    argv = plan(recipe)[0].argv(Path("r"))
    assert argv[argv.index("--img-size") + 1] == "64" and argv[argv.index("--epochs") + 1] == "5"
    full_grid = "steps.flip.grid.fraction=[0.05,0.10,0.15,0.20,0.30,0.45,0.60]"  # the thesis header's GPU replay
    flips = [t for t in plan(load_recipe(Path("recipes/thesis-resnet50.yaml"), [full_grid])) if t.step == "flip"]
    assert [t.params["fraction"] for t in flips] == [0.05, 0.10, 0.15, 0.20, 0.30, 0.45, 0.60]


def _broken(tmp_path, root, edit) -> str:
    recipe = tiny_recipe(root)
    edit(recipe)
    result = invoke("recipes", "validate", write(tmp_path / "r.yaml", recipe))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize("edit, expected", [
    (lambda r: r["steps"][1]["params"].update(chekpoint="train"), r"steps\[1\]\.params\.chekpoint: unknown key; did you mean 'checkpoint'"),
    (lambda r: r["steps"][0]["params"].update(epochs="many"), r"steps\[0\]\.params\.epochs: .*integer"),
    (lambda r: r["steps"][2]["grid"].update(eps=["2/255", 3]), r"steps\[2\]\.grid\.eps\[1\]: .*outside"),
    (lambda r: r["steps"][5]["params"].update(checkpoint="rtt"), r"steps\[5\]\.params\.checkpoint: 'rtt' is neither an earlier step"),
    (lambda r: r["steps"][4]["grid"].update(ratio=0.2), r"steps\[4\]\.grid\.ratio: expected a non-empty list"),
    (lambda r: r["steps"][3]["params"].update(method="armour"), r"steps\[3\]: unknown defence 'armour'|steps\[3\]\.params\.method"),
    (lambda r: r["steps"][2]["params"].update(method="fgsmm"), r"unknown attack method 'fgsmm'|fgsmm"),
    (lambda r: r["steps"][1].update(command="predict"), r"steps\[1\]\.command: expected one of .*train.*report.*, got .predict."),
    (lambda r: r["steps"][1].update(name="train"), r"steps\[1\]\.name: step 'train' is defined twice"),
    (lambda r: r["steps"][0].update(cpus=0), r"steps\[0\]\.cpus: expected a positive number of CPUs .*got 0; e\.g\. cpus: 2"),
    (lambda r: r["steps"][0].update(cpus=float("inf")), r"steps\[0\]\.cpus: expected a positive number of CPUs .*got inf"),
    (lambda r: r["steps"][0].update(cpus="two"), r"steps\[0\]\.cpus: expected a number, got str 'two'"),
    (lambda r: r["steps"][0].update(cpus=True), r"steps\[0\]\.cpus: expected a number, got bool True"),
    (lambda r: r["steps"][1]["params"].pop("checkpoint"), r"steps\[1\]\.params\.checkpoint: Missing option"),
    (lambda r: r["steps"][0]["params"].update(pretrained="yes"), r"steps\[0\]\.params\.pretrained: expected true or false"),
    (lambda r: r.update(modle={}), r"recipe\.modle: unknown key; did you mean 'model'"),
    (lambda r: r["data"].update(sise=64), r"data\.sise: unknown key; did you mean 'size'"),
    (lambda r: r["reference"].update(clean={"acuracy": 0.7}), r"reference\.clean\.acuracy: unknown key"),
    (lambda r: r["reference"].update(clean={"accuracy": 70.19}), r"reference\.clean\.accuracy: expected a fraction"),
    (lambda r: r["reference"].update(nosuch={"accuracy": 0.7}), r"reference\.nosuch: unknown key"),
    # every value built and checked as its command will, before anything runs
    (lambda r: r["steps"][4]["grid"].update(ratio=[0, 1.5]), r"steps\[4\]\.grid\.ratio\[0\]: --ratio 0(\.0)? is outside \(0, 1\]"),
    (lambda r: r["steps"][4]["grid"].update(ratio=[0.5, 1.5]), r"steps\[4\]\.grid\.ratio\[1\]: --ratio 1.5 is outside"),
    (lambda r: r["steps"][3]["params"].update(quality=101), r"steps\[3\]\.params\.quality: .*101 is outside 1–100"),
    (lambda r: r["model"].update(name="resnet19"), r"model\.name: unknown model 'resnet19'"),
    (lambda r: r["data"].update(loader="ham9"), r"data\.loader: unknown dataset 'ham9'; choose one of ham10000, dermamnist"),
    (lambda r: r["data"].update(size=-5), r"data\.size: --img-size must be positive, got -5"),
    (lambda r: r["data"].update(size=100000), r"data\.size: --img-size 100000: \d+ images need at least [\d,]+ GiB of memory.*smaller --img-size"),
    (lambda r: r["data"].update(resize="stretch"), r"data\.resize: unknown resize method 'stretch'"),
    (lambda r: r["data"].update(split_ratios="0.9,0.2"), r"data\.split_ratios: bad split ratios"),
    (lambda r: r["data"].update(malignant=["mel", "cancer"]), r"data\.malignant: --malignant names unknown class\(es\) cancer"),
    (lambda r: r["steps"][8]["params"].update(target_class="melanoma"), r"steps\[8\]\.params\.target_class: --target-class 'melanoma' is not a class"),
    (lambda r: r["steps"][8]["grid"].update(fraction=[0.2, 1.5]), r"steps\[8\]\.grid\.fraction\[1\]: .*--fraction in \(0, 1\)"),
    (lambda r: r["steps"][8]["params"].update(source_class="bkl"), r"steps\[8\]\.params\.source_class: --source-class and --target-class are the same"),
    (lambda r: r["steps"][6]["params"].update(max_iter=0), r"steps\[6\]\.params\.max_iter: --max-iter must be at least 1"),
    (lambda r: r["steps"][6]["params"].update(threat="grey-box"), r"steps\[6\]\.params\.threat: unknown --threat 'grey-box'"),
    (lambda r: r["steps"][2]["params"].update(param={"decay": "1/0"}), r"steps\[2\]\.params\.param: --param decay=1/0: cannot read the value"),
    (lambda r: r["steps"][2]["params"].update(fraction=0.3), r"steps\[2\]\.params\.fraction: --fraction does not apply to fgsm"),
    (lambda r: r["steps"][4]["params"].update(attacks="fgsm,deepfool"), r"steps\[4\]\.params\.attacks: --attacks names deepfool"),
    (lambda r: r["steps"][1]["params"].update(threat="white-box"), r"steps\[1\]\.params\.threat: --threat applies only with --attack"),
    (lambda r: r["steps"][0]["params"].update(optimizer="adam"), r"steps\[0\]\.params\.optimizer: unknown --optimizer 'adam'"),
    (lambda r: r["steps"][0]["params"].update(device="gpu"), r"steps\[0\]\.params\.device: unknown device 'gpu'"),
    (lambda r: r["steps"][7]["params"].update(method="patch", patch_size=1.5), r"steps\[7\]\.params\.patch_size: --patch-size 1.5 must be in \(0, 1\]"),
    (lambda r: r["model"].update(weights="nope.safetensors"), r"model\.weights: --weights nope.safetensors does not exist"),
    (lambda r: r["steps"][9]["params"].update(bootstrap=-5), r"steps\[9\]\.params\.bootstrap: .*greater than or equal to 0"),
])
def test_bad_recipes_name_the_key_path(tmp_path, derma_subset, edit, expected):
    assert re.search(expected, _broken(tmp_path, derma_subset, edit)), expected


def test_run_refuses_a_bad_recipe_before_its_first_step(tmp_path, derma_subset):
    recipe = tiny_recipe(derma_subset)
    recipe["steps"][4]["grid"]["ratio"] = [0.2, 1.5]  # a late step: the earlier ones must not run either
    result = invoke("run", write(tmp_path / "r.yaml", recipe), "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "steps[4].grid.ratio[1]: --ratio 1.5" in result.stderr
    assert not (tmp_path / "out").exists()


def test_malformed_yaml_and_missing_file(tmp_path, derma_subset):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - name: [unclosed\n")
    result = invoke("run", bad, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "not valid YAML at line" in result.stderr
    assert not (tmp_path / "out").exists()
    result = invoke("run", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "not found" in result.stderr
    result = invoke("recipes", "validate", write(tmp_path / "r.yaml", tiny_recipe(derma_subset)), "--set", "steps.nosuch.params.x=1")
    assert result.exit_code == 2 and "no step 'nosuch'" in result.stderr
    result = invoke("report", tmp_path)
    assert result.exit_code == 2 and "plan.json" in result.stderr


@pytest.fixture(scope="module")
def tiny_run(derma_subset, tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    path = write(root / "tiny.yaml", tiny_recipe(derma_subset))
    result = invoke("run", path, "--out", root / "run")
    assert result.exit_code == 0, result.output
    return path, root / "run"


@pytest.mark.slow
def test_recipe_runs_end_to_end_and_reports(tiny_run):
    _, run = tiny_run
    report = json.loads((run / "report.json").read_text())
    rows = {(r["task"], r["threat"]): r for r in report["rows"]}
    assert not report["missing"]
    assert len(rows) == 14  # clean, 2 fgsm, llt, 2 retrained, their 2 attacks, llt_pgd under 3 threat models, square, 2 poisoned
    assert ("square", "black-box, scores only") in rows  # a query attack on the evaluated model is not white-box
    for row in rows.values():
        for key, value in row["metrics"].items():
            assert value is None or 0 <= value <= 1, (row["task"], key, value)
        for key, (low, high) in ((k, v) for k, v in row["ci"].items() if v):
            assert low <= row["metrics"][key] <= high, (row["task"], key)
    clean = rows[("clean", "—")]["metrics"]
    strong = rows[("fgsm@eps=8_255", "white-box")]["metrics"]
    assert strong["accuracy"] <= clean["accuracy"] and strong["fooling_rate"] > 0
    assert strong["clean_accuracy"] == clean["accuracy"]
    assert rows[("clean", "—")]["also"]["sensitivity"] is not None  # the thesis mapping beside the correct one
    # the operating point: chosen once at training, the same threshold for the model clean, attacked and llt-defended
    thresholds = {rows[key]["metrics"]["threshold"] for key in (("clean", "—"), ("fgsm@eps=8_255", "white-box"), ("llt", "—"))}
    assert len(thresholds) == 1 and None not in thresholds and rows[("clean", "—")]["metrics"]["fnr_at_threshold"] is not None
    low, high = rows[("clean", "—")]["ci"]["auroc"]
    assert low <= rows[("clean", "—")]["metrics"]["auroc"] <= high
    md = (run / "report.md").read_text()
    assert "| clean | accuracy | 70.0 |" in md and "Health under the alternative mapping" in md
    assert "Accuracy by model and attack" in md and "| rt@ratio=0.6 |" in md
    assert "| AUROC [95% CI] | sensitivity @t | specificity @t | NPV @t | FNR @t [95% CI] |" in md and "fgsm@eps=8_255/roc.png" in md
    assert "| fgsm ε=2/255 | fgsm ε=8/255 |" in md  # the ε grid keeps one column per ε
    html = (run / "report.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)  # one self-contained file
    for figure in ("recap", "poisoned_share", "adversarial_share", "robustness"):
        assert (run / "report_figures" / f"{figure}.png").stat().st_size > 0


# Appended to a copy of report.html: once everything has loaded, what a reader would see at 1280 px, written into the page.
PROBE = """<script>window.addEventListener('load', () => {
  const width = document.documentElement.clientWidth;
  const images = [...document.images];
  const result = {width: width, page: document.documentElement.scrollWidth, images: images.length,
    loaded: images.filter(i => i.complete && i.naturalWidth > 0).map(i => i.alt),
    sections: [...document.querySelectorAll('h2')].map(h => h.textContent),
    tables: [...document.querySelectorAll('table')].map(t => Math.ceil(t.getBoundingClientRect().right))};
  const out = document.createElement('pre'); out.id = 'probe'; out.textContent = JSON.stringify(result); document.body.appendChild(out);
});</script>"""


@pytest.mark.slow
def test_report_html_in_a_real_browser(tiny_run, tmp_path):
    """report.html as headless Chromium shows it at 1280 px: every image loaded (the robustness curves among them), the
    Findings the first section, no table wider than the page."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not on PATH (Debian's package `chromium`; .ci/run installs it)")
    _, run = tiny_run
    page = tmp_path / "report.html"
    page.write_text((run / "report.html").read_text() + PROBE)
    home = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    try:
        shown = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000", "--virtual-time-budget=10000",
                                "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, env={**os.environ, **home})
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish within 120 s here")
    if shown.returncode != 0:
        pytest.skip(f"chromium cannot run here (exit {shown.returncode}): {shown.stderr.strip().splitlines()[-1:]}")
    probe = re.search(r'<pre id="probe">(.*?)</pre>', shown.stdout)
    assert probe, shown.stdout[-2000:]
    seen = json.loads(probe.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert seen["images"] > 10 and len(seen["loaded"]) == seen["images"]
    assert any(alt.startswith("Robustness curves") for alt in seen["loaded"])
    assert seen["sections"][0] == "Findings"
    assert seen["tables"] and max(seen["tables"]) <= seen["width"] and seen["page"] <= seen["width"], seen


@pytest.mark.slow
def test_rerun_skips_and_interrupted_run_resumes_to_the_same_numbers(tiny_run):
    path, run = tiny_run
    before = {p: p.stat().st_mtime_ns for p in run.glob("*/metrics.json")}
    result = invoke("run", path, "--out", run)
    assert result.exit_code == 0 and result.stderr.count("skipped") == 13
    assert {p: p.stat().st_mtime_ns for p in run.glob("*/metrics.json")} == before
    # a run killed while retraining: later steps absent, one step half-written; resumed in place
    redone = ("rt@ratio=0.6", "rt_fgsm@rt@ratio=0.6", "llt_pgd/adaptive")
    uninterrupted = {name: json.loads((run / name / "metrics.json").read_text()) for name in redone}
    for name in ("rt@ratio=0.6", "rt_fgsm@rt@ratio=0.2", "rt_fgsm@rt@ratio=0.6", "llt_pgd", "report.md"):
        target = run / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    (run / ".rt@ratio=0.6.partial-999").mkdir()
    result = invoke("run", path, "--out", run)
    assert result.exit_code == 0, result.output
    for name in redone:
        resumed = json.loads((run / name / "metrics.json").read_text())
        resumed.pop("seconds", None), uninterrupted[name].pop("seconds", None)
        assert resumed == uninterrupted[name], name
    assert (run / "report.md").is_file() and not list(run.glob(".*partial*"))
