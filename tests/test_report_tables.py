"""The study report's tables and figures on made-up rows (issue 26): the Health table names each row's attack, so the rows
of a worst-case run (each attack and the worst case, one run name) tell apart; robustness curves and the recap."""

import pytest
from helpers import invoke

from skinart.report.charts import recap, robustness_curves
from skinart.report.findings import findings
from skinart.report.rows import ReportOptions
from skinart.report.study import _documents, _tables

KEYS = ("accuracy", "macro_recall", "macro_specificity", "fooling_rate", "error_rate", "binary_accuracy", "sensitivity", "npv",
        "fnr", "auroc", "sensitivity_at_threshold", "specificity_at_threshold", "npv_at_threshold", "fnr_at_threshold")


def _row(attack: str, accuracy: float, threat: str = "adaptive", **extra) -> dict:
    return {"task": "defended_worst@eps=8_255", "model": "skin_cnn", "attack": attack, "threat": threat, "eps": 8 / 255,
            "ci": {}, "metrics": {**dict.fromkeys(KEYS, 0.5), "accuracy": accuracy, "clean_accuracy": 0.8}, **extra}


def test_health_rows_of_one_worst_case_run_name_their_attack():
    rows = [_row("fgsm", 0.6), _row("pgd", 0.4), _row("worst case (fgsm, pgd)", 0.3)]
    tables = {title: (header, lines) for title, header, lines, *_ in _tables(rows, [], {}, ReportOptions())}
    header, lines = next(v for k, v in tables.items() if k.startswith("Health ("))
    assert header[:2] == ["run", "attack"]
    assert [line[1] for line in lines] == ["fgsm", "pgd", "worst case (fgsm, pgd)"]
    assert len({tuple(line) for line in lines}) == 3  # the same run name and the same health numbers no longer look alike


def test_findings_come_first_name_the_strongest_attack_and_the_fired_checks(tmp_path):
    rows = [_row("clean", 0.8, "—", images=50), _row("fgsm", 0.1, "white-box", images=50),
            _row("pgd", 0.4, images=50, sanity="FIRED: noise"), _row("worst case (fgsm, pgd)", 0.3, images=300)]
    found = findings(rows)
    text = [t for t, _ in found]
    assert text[0].startswith("skin_cnn: clean accuracy 80.0%") and "(from 50 < 200 images)" in text[0]
    # the adaptive threat model is the strongest that ran, though white-box FGSM scored lower
    assert "strongest attack worst case (fgsm, pgd) (adaptive" in text[1] and "80.0% → 30.0%" in text[1] and "images)" not in text[1]
    assert [i for _, i in found] == [0, 3, 2] and "FIRED: noise" in text[2]
    md, html = _documents(tmp_path, "t", intro=["intro"], found=found, tables=_tables(rows, [], {}, ReportOptions()), figures=[], images=[])
    assert md.index("## Findings") < md.index("intro") < md.index("## Model performance")
    assert html.index("<h2 id='findings'>") < html.index("<h2>") and "href='#row-3'" in html and "<tr id='row-3'>" in html
    assert "Figures" not in md and "Figures" not in html  # no figures: no empty section


def test_a_check_fired_on_every_row_of_one_run_is_one_finding():
    # the quickstart's worst-case runs repeat their fired checks on each attack's row: 18 alike lines before
    rows = [_row("clean", 0.8, "—"), *(_row(a, 0.4, t, sanity="FIRED: flags (pgd)") for a in ("fgsm", "pgd") for t in ("white-box", "adaptive")),
            {**_row("pgd", 0.4), "task": "other", "sanity": "FIRED: flags (pgd)"}]
    fired = [(t, i) for t, i in findings(rows) if t.startswith("sanity check")]
    assert fired == [("sanity check FIRED: flags (pgd): defended_worst@eps=8_255, fgsm (white-box), fgsm (adaptive), "
                      "pgd (white-box), pgd (adaptive)", 1), ("sanity check FIRED: flags (pgd): other, pgd (adaptive)", 5)]


def test_report_of_a_missing_path_says_it_does_not_exist(tmp_path):
    result = invoke("report", tmp_path / "nope")
    assert result.exit_code == 2 and "nope does not exist" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nope").exists()


def test_a_finding_s_before_and_after_stand_on_the_same_images():
    # the clean row (the whole test split) misses 50 % of cancers; the 50 images AutoAttack attacked, 20 % before it
    rows = [_row("clean", 0.8, "—", images=2000),
            {**_row("autoattack", 0.2, images=50), "metrics": {**_row("x", 0.2)["metrics"], "clean_fnr_at_threshold": 0.2}}]
    assert "FNR@t 20.0% → 50.0%" in findings(rows)[1][0]


def test_the_strongest_attack_is_autoattack_where_it_ran_alone():
    # `evaluate --attack autoattack` names its row by the method's lower-case name; PGD scored lower on more images
    rows = [_row("clean", 0.8, "—"), _row("pgd", 0.3, images=500), _row("autoattack", 0.35, images=50)]
    assert "strongest attack autoattack (adaptive" in findings(rows)[1][0]


def test_robustness_curves_plot_each_swept_attack_per_model_and_threat_with_its_intervals():
    ci = {"accuracy": [0.5, 0.7], "fnr_at_threshold": [0.1, 0.3]}
    rows = [{**_row("fgsm", 0.6, "white-box", images=200, ci=ci), "model": "cnn", "eps": 2 / 255},
            {**_row("fgsm", 0.3, "white-box", images=200), "model": "cnn", "eps": 8 / 255},
            {**_row("fgsm", 0.9, "white-box", images=20), "model": "cnn", "eps": 8 / 255},  # the same point on fewer images
            {**_row("fgsm", 0.5, "adaptive", images=200), "model": "llt", "eps": 8 / 255},
            {**_row("pgd", 0.1, "white-box", images=200), "model": "cnn", "eps": 8 / 255},  # one ε: no curve
            _row("clean", 0.8, "—", images=200, eps=None)]
    curves = robustness_curves(rows)
    assert list(curves) == ["fgsm: accuracy", "fgsm: FNR @t"]
    assert list(curves["fgsm: accuracy"]) == ["cnn (white-box)", "llt (adaptive)"]
    x, y, low, high = curves["fgsm: accuracy"]["cnn (white-box)"]
    assert x == pytest.approx([2, 8]) and y == [0.6, 0.3] and low == [0.5, None] and high == [0.7, None]
    assert curves["fgsm: FNR @t"]["cnn (white-box)"][2:] == ([0.1, None], [0.3, None])


def test_recap_is_one_bar_per_model_in_each_attack_column():
    rows = [{**_row("clean", 0.8, "—"), "model": "cnn"}, {**_row("fgsm", 0.3, "white-box"), "model": "cnn"},
            {**_row("clean", 0.7, "—"), "model": "llt"}, {**_row("fgsm", 0.4, "adaptive"), "model": "llt"}]
    categories, bars = recap(rows)["accuracy"]
    assert categories == ["clean", "fgsm", "fgsm (adaptive)"]
    assert bars == {"cnn": [0.8, 0.3, None], "llt": [0.7, None, 0.4]}
    assert recap(rows[:1]) == {}  # one bar compares nothing
