"""The report's opening "Findings": computed from its rows, no free text, each naming the data it stands on. Per model
its import check (a model trained elsewhere), its clean numbers, the attack that lowers accuracy most and the one that
raises FNR@t (missed cancers) most, each before → after on its own images (one finding where they are the same
attack), or that it was never attacked; then every sanity check that fired, in words. Each links to its row of the
multi-class table."""

from __future__ import annotations

from skinart.presentation.tables import pct
from skinart.report.basis import CHOSEN_HERE
from skinart.report.rows import attacked
from skinart.report.sanity import fired_findings

SMALL_SAMPLE = 200  # below this many images a finding says how few it stands on
NOT_ATTACKED = "not attacked"


def _p(value: float | None) -> str:
    return pct(value) + ("" if value is None else "%")


def row_anchor(index: int) -> str:
    return f"row-{index}"


def _few(row: dict) -> str:
    n = row.get("images")
    return f" (from {n} < {SMALL_SAMPLE} images)" if n is not None and n < SMALL_SAMPLE else ""


def _change(row: dict, key: str) -> float | None:
    """The attack's change of a metric on its own images (attacked − the same images clean), None without both."""
    before, after = (row.get("clean_metrics") or {}).get(key), row["metrics"].get(key)
    return None if before is None or after is None else after - before


def _harm(row: dict, key: str, sign: int) -> tuple:
    """Sort key, most harmful first: the largest change in the harmful direction (sign −1: a fall, +1: a rise) on the
    row's own images; rows without a before by the value alone, after them."""
    change, value = _change(row, key), row["metrics"].get(key)
    return (change is None, -sign * (change if change is not None else (value or 0.0)))


def _before_after(row: dict, key: str, name: str) -> str:
    return f"{name} {_p((row.get('clean_metrics') or {}).get(key))} → {_p(row['metrics'].get(key))}"


def _on(row: dict) -> str:
    n = row.get("images")
    return f"on its {n} {row.get('data') or 'test'} images" if n is not None else f"on {row.get('data') or 'test'}"


def _clean(model: str, r: dict) -> str:
    m, data = r["metrics"], r.get("data") or "test"
    chosen = ("; t was chosen on these images, so FNR@t is about 1 − the target sensitivity by construction (not a test "
              "of it)") if CHOSEN_HERE in data else ""
    constant = (f"; its stored t = {m['threshold']:.4g} calls every image malignant (specificity at t 0%): its FNR@t of 0 "
                "is no sign of a good model, and the operating point decides nothing") if m.get("specificity_at_threshold") == 0 else ""
    return (f"{model} on {data}: clean accuracy {_p(m['accuracy'])}, AUROC {_p(m['auroc'])}, FNR@t {_p(m['fnr_at_threshold'])}"
            f"{_few(r)}{chosen}{constant}")


def _attack_findings(model: str, attacks: list[tuple[int, dict]]) -> list[tuple[str, int]]:
    """The attack that lowers accuracy most and the one that raises FNR@t most (one finding when they are one row)."""
    i, worst = min(attacks, key=lambda ir: _harm(ir[1], "accuracy", -1))
    name = lambda r: f"{r['attack']} ({r['threat']}, {r['task']})"  # noqa: E731
    accuracy, fnr = _before_after(worst, "accuracy", "accuracy"), _before_after(worst, "fnr_at_threshold", "FNR@t")
    if all(r["metrics"].get("fnr_at_threshold") is None for _, r in attacks):  # no operating point: accuracy alone
        return [(f"{model}: {name(worst)} lowers accuracy most: {accuracy} {_on(worst)}{_few(worst)}", i)]
    j, missed = min(attacks, key=lambda ir: _harm(ir[1], "fnr_at_threshold", +1))
    if i == j:
        return [(f"{model}: {name(worst)} lowers accuracy most and raises FNR@t (missed cancers) most: {accuracy}, {fnr} "
                 f"{_on(worst)}{_few(worst)}", i)]
    return [(f"{model}: {name(worst)} lowers accuracy most: {accuracy} ({fnr}) {_on(worst)}{_few(worst)}", i),
            (f"{model}: {name(missed)} raises FNR@t (missed cancers) most: {_before_after(missed, 'fnr_at_threshold', 'FNR@t')} "
             f"({_before_after(missed, 'accuracy', 'accuracy')}) {_on(missed)}{_few(missed)}", j)]


def _model_findings(model: str, indexed: list[tuple[int, dict]]) -> list[tuple[str, int]]:
    clean = [(i, r) for i, r in indexed if r["attack"] == "clean"]
    attacks = [(i, r) for i, r in indexed if attacked(r) and not r.get("worst_case")]
    found = [(f"{model}: {verdict}", i) for verdict, i in
             {r["import_check"]: i for i, r in reversed(indexed) if r.get("import_check")}.items()]
    found += [(_clean(model, r), i) for i, r in clean]
    if attacks:
        found += _attack_findings(model, attacks)
    elif clean:
        found.append((f"{model}: {NOT_ATTACKED}: no attack ran on it, so nothing here shows how robust it is", clean[0][0]))
    return found


def findings(rows: list[dict]) -> list[tuple[str, int]]:
    """(sentence, index of its row in the multi-class table), per model in the rows' order, then every sanity check
    that fired, once per run and check."""
    by_model: dict[str, list[tuple[int, dict]]] = {}
    for i, r in enumerate(rows):
        by_model.setdefault(r["model"], []).append((i, r))
    return [f for model, indexed in by_model.items() for f in _model_findings(model, indexed)] + fired_findings(rows)
