"""The report's opening "Findings": computed from its rows, no free text. Per model its clean numbers, the strongest
attack (preferring the strongest threat model that ran: adaptive, then AutoAttack's worst case) with what it did to
accuracy and FNR@t, and every sanity check that fired; each finding links to its row of the multi-class table."""

from __future__ import annotations

from skinart.presentation.tables import pct

SMALL_SAMPLE = 200  # below this many images a finding says how few it stands on


def _p(value: float | None) -> str:
    return pct(value) + ("" if value is None else "%")


def row_anchor(index: int) -> str:
    return f"row-{index}"


def _strength(row: dict) -> tuple:
    """Sort key, strongest first: the adaptive threat model, AutoAttack, then the lowest accuracy."""
    return (row["threat"] != "adaptive", "autoattack" not in row["attack"].lower(), row["metrics"]["accuracy"] or 0.0)


def _few(row: dict) -> str:
    n = row.get("images")
    return f" (from {n} < {SMALL_SAMPLE} images)" if n is not None and n < SMALL_SAMPLE else ""


def _link(text: str, index: int) -> tuple[str, int]:
    return text, index


def _model_findings(model: str, indexed: list[tuple[int, dict]]) -> list[tuple[str, int]]:
    clean = [(i, r) for i, r in indexed if r["attack"] == "clean" and r["threat"] == "—"]
    attacked = [(i, r) for i, r in indexed if r["attack"] != "clean" and r["threat"] != "poisoned training"]
    found = []
    if clean:
        i, r = clean[0]
        m = r["metrics"]
        found.append(_link(f"{model}: clean accuracy {_p(m['accuracy'])}, AUROC {_p(m['auroc'])}, FNR@t {_p(m['fnr_at_threshold'])}"
                           f"{_few(r)}", i))
    if attacked:
        i, r = min(attacked, key=lambda ir: _strength(ir[1]))
        m = r["metrics"]  # before → after on the row's own images (the clean row's numbers stand on the whole split)
        found.append(_link(f"{model}: strongest attack {r['attack']} ({r['threat']}, {r['task']}) took accuracy "
                           f"{_p(m['clean_accuracy'])} → {_p(m['accuracy'])} and FNR@t {_p(m.get('clean_fnr_at_threshold'))} → "
                           f"{_p(m['fnr_at_threshold'])}{_few(r)}", i))
    return found


def findings(rows: list[dict]) -> list[tuple[str, int]]:
    """(sentence, index of its row in the multi-class table), per model in the rows' order, then every sanity check that fired."""
    by_model: dict[str, list[tuple[int, dict]]] = {}
    for i, r in enumerate(rows):
        by_model.setdefault(r["model"], []).append((i, r))
    found = [f for model, indexed in by_model.items() for f in _model_findings(model, indexed)]
    # one finding per run and fired check: a worst-case run repeats its checks on every attack's row
    fired: dict[tuple[str, str], list[tuple[int, dict]]] = {}
    for i, r in enumerate(rows):
        if str(r.get("sanity", "")).startswith("FIRED"):
            fired.setdefault((r["task"], r["sanity"]), []).append((i, r))
    found += [_link(f"sanity check {sanity}: {task}, " + ", ".join(f"{r['attack']} ({r['threat']})" for _, r in rows_of), rows_of[0][0])
              for (task, sanity), rows_of in fired.items()]
    return found
