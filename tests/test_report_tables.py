"""The study report's tables, findings and figures on made-up rows (issues 26, 37): the Health table names each row's
attack, so the rows of a worst-case run tell apart; every table and finding names the data its numbers stand on; per
model the attack that lowers accuracy most and the one that raises FNR@t most; every attacked number beside the clean
number of its own images; fired sanity checks in words; a model never attacked says so; small-multiple curves."""

import pytest
from helpers import invoke

from skinart.report.charts import recap, robustness_curves, severity_curves
from skinart.report.documents import documents
from skinart.report.findings import findings
from skinart.report.rows import ReportOptions
from skinart.report.sanity import sanity_cell
from skinart.report.tables import build_tables

KEYS = ("accuracy", "macro_recall", "macro_specificity", "fooling_rate", "error_rate", "binary_accuracy", "sensitivity", "npv",
        "fnr", "auroc", "sensitivity_at_threshold", "specificity_at_threshold", "npv_at_threshold", "fnr_at_threshold")
TEST = "dermamnist test"


def _row(attack: str, accuracy: float, threat: str = "adaptive", *, fnr: float = 0.5, before: float = 0.8,
         before_fnr: float = 0.1, **extra) -> dict:
    """A row as `report.rows` makes it; an attacked one with the clean numbers of its own images (`before`)."""
    clean = None if attack == "clean" else {**dict.fromkeys(KEYS, 0.5), "accuracy": before, "fnr_at_threshold": before_fnr}
    return {"task": "defended_worst@eps=8_255", "model": "skin_cnn", "attack": attack, "threat": threat, "eps": 8 / 255,
            "ci": {}, "data": TEST, "clean_metrics": clean,
            "metrics": {**dict.fromkeys(KEYS, 0.5), "accuracy": accuracy, "fnr_at_threshold": fnr}, **extra}


def _tables(rows, entries=()):
    return {title: (header, lines) for title, header, lines, *_ in build_tables(rows, list(entries), {}, ReportOptions())}


def test_health_rows_of_one_worst_case_run_name_their_attack():
    rows = [_row("fgsm", 0.6), _row("pgd", 0.4), _row("worst case (fgsm, pgd)", 0.3, worst_case=True)]
    header, lines = next(v for k, v in _tables(rows).items() if k.startswith("Health ("))
    assert header[:2] == ["run", "attack"]  # one data set for every row: named in the title, no column
    assert [line[1] for line in lines] == ["fgsm", "pgd", "worst case (fgsm, pgd)"]
    assert len({tuple(line) for line in lines}) == 3  # the same run name and the same health numbers no longer look alike


def test_every_table_and_finding_names_its_split_and_a_val_finding_says_t_was_chosen_there():
    # `evaluate --split val` beside the test split: FNR@t on val is 1 − the target by construction
    val = "dermamnist val, where t was chosen"
    rows = [_row("clean", 0.733, "—", fnr=0.076, data=val, task="on-val"), _row("clean", 0.728, "—", fnr=0.061, task="on-test")]
    tables = _tables(rows)
    title = next(k for k in tables if k.startswith("Model performance"))
    assert title.endswith(f"— on {val}, {TEST} (each row's data column)")
    header, lines = tables[title]
    assert [line[header.index("data")] for line in lines] == [val, TEST]
    text = [t for t, _ in findings(rows)]
    assert text[0].startswith(f"skin_cnn on {val}: clean accuracy 73.3%") and "t was chosen on these images" in text[0]
    assert text[1].startswith(f"skin_cnn on {TEST}: clean accuracy 72.8%") and "chosen" not in text[1]
    assert all(k.endswith(f"— on {TEST}") for k in _tables(rows[1:]))


def test_a_stored_t_that_calls_every_image_malignant_is_said_beside_its_fnr_of_zero():
    # certified.yaml's σ 0.12 model: t = 0 on its vote-share p_malignant, sensitivity 100 %, specificity 0 at t
    rows = [_row("clean", 0.48, "—", fnr=0.0, threshold=0.0), _row("clean", 0.51, "—", fnr=0.107, task="other")]
    rows[0]["metrics"] |= {"threshold": 0.0, "specificity_at_threshold": 0.0}
    text = [t for t, _ in findings(rows)]
    assert "calls every image malignant (specificity at t 0%)" in text[0] and "calls every" not in text[1]


def test_the_attack_that_misses_most_cancers_is_named_beside_the_one_that_lowers_accuracy_most():
    # the quickstart's retrain: AutoAttack lowers accuracy most but leaves FNR@t at 20 %; PGD misses 64.7 % of cancers
    rows = [_row("clean", 0.72, "—", images=2000), _row("autoattack", 0.18, fnr=0.20, before=0.62, before_fnr=0.0, images=50),
            _row("pgd", 0.26, fnr=0.647, before=0.62, before_fnr=0.059, images=50),
            _row("robust accuracy (AutoAttack): worst case (pgd, autoattack)", 0.16, fnr=0.7, worst_case=True, images=50)]
    found = findings(rows)
    text = [t for t, _ in found]
    assert "autoattack (adaptive, defended_worst@eps=8_255) lowers accuracy most: accuracy 62.0% → 18.0% (FNR@t 0.0% → 20.0%)" in text[1]
    assert "pgd (adaptive, defended_worst@eps=8_255) raises FNR@t (missed cancers) most: FNR@t 5.9% → 64.7%" in text[2]
    assert "on its 50 dermamnist test images (from 50 < 200 images)" in text[2] and [i for _, i in found] == [0, 1, 2]
    # one attack doing both: one finding
    both = findings([rows[0], _row("pgd", 0.1, fnr=0.9, images=500), _row("fgsm", 0.5, fnr=0.2, images=500)])
    assert len(both) == 2 and "pgd (adaptive, defended_worst@eps=8_255) lowers accuracy most and raises FNR@t" in both[1][0]


def test_findings_come_first_and_link_their_rows(tmp_path):
    rows = [_row("clean", 0.8, "—", images=50), _row("fgsm", 0.1, "white-box", images=50), _row("pgd", 0.4, images=300)]
    found = findings(rows)
    md, html = documents(tmp_path, "t", intro=["intro"], found=found, tables=build_tables(rows, [], {}, ReportOptions()),
                         figures=[], images=[])
    assert md.index("## Findings") < md.index("intro") < md.index("## Model performance")
    assert html.index("<h2 id='findings'>") < html.index("<h2>") and "href='#row-1'" in html and "<tr id='row-1'>" in html
    assert "Figures" not in md and "Figures" not in html  # no figures: no empty section


def _fired(flag: str = "robustness_overstated") -> dict:
    """A worst-case run's checks: the robustness flag fired on pgd, the gradient checks passed."""
    reason = f"{flag} (adaptive more than 10% below another threat model)"
    return {"noise": {"fired": False, "reason": "", "run": True}, "flags (pgd)": {"fired": True, "reason": reason, "run": True},
            "flags (fgsm)": {"fired": False, "reason": "", "run": True}, "fired": ["flags (pgd)"],
            "values": {"steps": 10, "eps": 8 / 255, "sweep": {}, "pgd_5k": 0.2, "noise": 0.6}}


def test_a_fired_check_is_said_in_words_with_its_two_numbers_once_per_run():
    rows = [_row("clean", 0.8, "—"), *(_row(a, acc, t, sanity_checks=_fired(), model="retrain") for a, t, acc in (
        ("fgsm", "white-box", 0.5), ("pgd", "white-box", 0.306), ("pgd", "transfer", 0.64), ("pgd", "adaptive", 0.306)))]
    fired = [(t, i) for t, i in findings(rows) if t.startswith("sanity check")]
    assert fired == [("sanity check failed (defended_worst@eps=8_255): pgd: transfer accuracy 64.0% overstates retrain's "
                      "robustness: the adaptive attacker reaches 30.6%", 1)]
    assert sanity_cell(_fired()) == "FIRED: transfer overstates robustness (pgd)"
    masked = {**_fired("gradient_masking_suspected")}
    assert "white-box accuracy 30.6% on retrain is gradient masking by its preprocessor: the adaptive attacker (through it) " \
           "reaches 30.6%" in findings([{**r, "sanity_checks": masked} for r in rows[1:]])[-1][0]
    noise = {"noise": {"fired": True, "reason": "x", "run": True}, "fired": ["noise"],
             "values": {"steps": 10, "eps": 0.5, "sweep": {"0.5": 0.7, "1.0": 0.0}, "pgd_5k": 0.6, "noise": 0.55}}
    (text, _), = [f for f in findings([_row("pgd", 0.7, sanity_checks=noise)]) if f[0].startswith("sanity")]
    assert "PGD-10 leaves 70.0% accuracy on skin_cnn, but uniform noise of the same ε leaves 55.0%" in text


def test_report_of_a_missing_path_says_it_does_not_exist(tmp_path):
    result = invoke("report", tmp_path / "nope")
    assert result.exit_code == 2 and "nope does not exist" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nope").exists()


def test_a_finding_s_before_and_after_stand_on_the_same_images():
    # the clean row (the whole test split) misses 50 % of cancers; the 50 images AutoAttack attacked, 20 % before it
    rows = [_row("clean", 0.8, "—", images=2000, fnr=0.5), _row("autoattack", 0.2, before_fnr=0.2, images=50)]
    assert "FNR@t 20.0% → 50.0%" in findings(rows)[1][0]


def test_every_attacked_number_stands_beside_the_clean_number_of_its_own_images_and_unattacked_models_say_so():
    # the whole split's clean accuracy is 69.9; the 50 images AutoAttack ran on were 66.0 % right before it
    rows = [_row("clean", 0.699, "—", images=2005), _row("autoattack", 0.2, before=0.66, images=50),
            _row("clean", 0.7, "—", model="llt", images=2005)]
    header, lines = next(v for k, v in _tables(rows).items() if k.startswith("Accuracy by model and attack"))
    assert header == ["model", "clean", "autoattack (adaptive)"]
    assert lines == [["skin_cnn", "69.9", "66.0 → 20.0"], ["llt", "70.0", "not attacked"]]
    categories, bars, before = recap(rows)["accuracy"]
    assert categories == ["clean", "autoattack (adaptive)"]
    assert bars == {"skin_cnn": [0.699, 0.2], "llt (not attacked)": [0.7, None]}
    assert before == {"skin_cnn": [None, 0.66], "llt (not attacked)": [None, None]}
    assert "llt: not attacked: no attack ran on it" in findings(rows)[-1][0]
    assert recap(rows[:1]) == {}  # one bar compares nothing


def test_robustness_curves_are_a_panel_per_model_a_line_per_attack_and_threat_with_its_intervals():
    ci = {"accuracy": [0.5, 0.7], "fnr_at_threshold": [0.1, 0.3]}
    rows = [{**_row("fgsm", 0.6, "white-box", images=200, ci=ci), "model": "cnn", "eps": 2 / 255},
            {**_row("fgsm", 0.3, "white-box", images=200), "model": "cnn", "eps": 8 / 255},
            {**_row("fgsm", 0.9, "white-box", images=20), "model": "cnn", "eps": 8 / 255},  # the same point on fewer images
            {**_row("fgsm", 0.7, "adaptive", images=200), "model": "cnn", "eps": 2 / 255},
            {**_row("fgsm", 0.4, "adaptive", images=200), "model": "cnn", "eps": 8 / 255},
            {**_row("fgsm", 0.5, "adaptive", images=200), "model": "llt", "eps": 8 / 255},  # one point: no curve, no panel
            {**_row("pgd", 0.1, "white-box", images=200), "model": "cnn", "eps": 8 / 255},  # one ε: no curve
            _row("clean", 0.8, "—", images=200, eps=None)]
    curves = robustness_curves(rows)
    assert list(curves) == ["cnn"] and list(curves["cnn"]) == ["accuracy", "FNR @t"]
    assert list(curves["cnn"]["accuracy"]) == [("fgsm", "white-box"), ("fgsm", "adaptive")]
    x, y, low, high = curves["cnn"]["accuracy"][("fgsm", "white-box")]
    assert x == pytest.approx([2, 8]) and y == [0.6, 0.3] and low == [0.5, None] and high == [0.7, None]
    assert curves["cnn"]["FNR @t"][("fgsm", "white-box")][2:] == ([0.1, None], [0.3, None])


def test_severity_curves_are_a_panel_per_model_a_line_per_shift_from_its_clean_value():
    base = {"section": "shift", "task": "shifts@train", "model": "train", "data": TEST}
    entries = [{**base, "shift": "clean", "severity": 0, "sensitivity_at_threshold": 0.9, "balanced_accuracy": 0.4},
               *({**base, "shift": name, "severity": s, "sensitivity_at_threshold": v, "balanced_accuracy": 0.3}
                 for name in ("hair", "jpeg_compression") for s, v in ((1, 0.8), (5, 0.5))),
               {**base, "model": "llt", "task": "shifts@llt", "shift": "clean", "severity": 0, "sensitivity_at_threshold": 0.7,
                "balanced_accuracy": 0.3}]
    grid, clean = severity_curves(entries)
    assert list(grid) == [f"train ({TEST})"] and clean[f"llt ({TEST})"] == {"sensitivity @t": 0.7, "balanced accuracy": 0.3}
    assert grid[f"train ({TEST})"]["sensitivity @t"][("hair", "")] == ([0, 1, 5], [0.9, 0.8, 0.5])
