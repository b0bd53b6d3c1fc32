"""The study report's tables on made-up rows (issue 26): the Health table names each row's attack, so the rows of a
worst-case run (each attack and the worst case, one run name) tell apart."""

from skinart.report.study import _tables

KEYS = ("accuracy", "macro_recall", "macro_specificity", "fooling_rate", "error_rate", "binary_accuracy", "sensitivity", "npv",
        "fnr", "auroc", "sensitivity_at_threshold", "specificity_at_threshold", "npv_at_threshold", "fnr_at_threshold")


def _row(attack: str, accuracy: float) -> dict:
    return {"task": "defended_worst@eps=8_255", "model": "skin_cnn", "attack": attack, "threat": "adaptive", "eps": 8 / 255,
            "ci": {}, "metrics": {**dict.fromkeys(KEYS, 0.5), "accuracy": accuracy}}


def test_health_rows_of_one_worst_case_run_name_their_attack():
    rows = [_row("fgsm", 0.6), _row("pgd", 0.4), _row("worst case (fgsm, pgd)", 0.3)]
    tables = {title: (header, lines) for title, header, lines in _tables(rows, [], {}, None, "")}
    header, lines = next(v for k, v in tables.items() if k.startswith("Health ("))
    assert header[:2] == ["run", "attack"]
    assert [line[1] for line in lines] == ["fgsm", "pgd", "worst case (fgsm, pgd)"]
    assert len({tuple(line) for line in lines}) == 3  # the same run name and the same health numbers no longer look alike
