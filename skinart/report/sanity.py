"""The sanity checks of an attacked evaluation (Carlini et al. 2019, `attacks.sanity`) in words: for each that fired,
the check, its two numbers (from the evaluation's own rows or the values the gradient checks kept) and what follows
for the robustness the report shows; and a short name of each for the tables' column."""

from __future__ import annotations

from skinart.presentation.tables import pct

# a fired check's short name in the tables (flags: the flag raised)
SHORT = {"unbounded": "PGD at ε=1 fails", "more_steps": "more PGD steps help the model", "noise": "PGD weaker than noise",
         "eps_monotone": "accuracy rises with ε", "transfer": "white-box weaker than transfer",
         "robustness_overstated": "transfer overstates robustness", "gradient_masking_suspected": "gradient masking"}


def _p(value: float | None) -> str:
    return pct(value) + ("" if value is None else "%")


def _split(key: str) -> tuple[str, str | None]:
    """'flags (pgd)' -> ('flags', 'pgd'): a worst-case run keeps each attack's table checks under its name."""
    base, _, method = key.partition(" (")
    return base, method.rstrip(")") or None


def _names(key: str, check: dict) -> list[str]:
    base, _ = _split(key)
    if base == "flags":
        return [SHORT[flag] for flag in ("robustness_overstated", "gradient_masking_suspected") if flag in check["reason"]]
    return [SHORT.get(base, base)]


def sanity_cell(sanity: dict | None) -> str:
    """The tables' column: — (no checks), ok, or FIRED: each fired check's short name with the attacks it fired on."""
    if not sanity:
        return "—"
    fired: dict[str, list[str]] = {}
    for key in sanity.get("fired", []):
        for name in _names(key, sanity[key]):
            fired.setdefault(name, []).extend([m] if (m := _split(key)[1]) else [])
    return "ok" if not fired else "FIRED: " + "; ".join(name + (f" ({', '.join(ms)})" if ms else "") for name, ms in fired.items())


def _accuracy(rows: list[dict], method: str, threat: str) -> float | None:
    return next((r["metrics"]["accuracy"] for r in rows if r.get("method", r["attack"]) == method and r["threat"].split(",")[0] == threat
                 and not r.get("worst_case")), None)


def _table_check(base: str, check: dict, method: str, model: str, rows: list[dict]) -> list[str]:
    """The transfer check and the robustness flags, with the accuracies of `method`'s threat models in this run."""
    white, transfer, adaptive = (_accuracy(rows, method, t) for t in ("white-box", "transfer", "adaptive"))
    if base == "transfer":
        return [f"{method} on {model}: the white-box attack leaves {_p(white)} accuracy, more than the transfer attack's "
                f"{_p(transfer)}: an attack with the model's own gradients should do at least as well, so the white-box "
                "number overstates robustness"]
    found = []
    if "robustness_overstated" in check["reason"]:
        found.append(f"{method}: transfer accuracy {_p(transfer)} overstates {model}'s robustness: the adaptive attacker "
                     f"reaches {_p(adaptive)}")
    if "gradient_masking_suspected" in check["reason"]:
        found.append(f"{method}: white-box accuracy {_p(white)} on {model} is gradient masking by its preprocessor: the "
                     f"adaptive attacker (through it) reaches {_p(adaptive)}")
    return found


def _gradient_check(base: str, values: dict, model: str) -> str:
    """A gradient check (PGD over an ε sweep, with 5× the steps, against noise) with the accuracies it measured."""
    steps, sweep = values.get("steps"), values.get("sweep", {})
    at_eps = sweep.get(str(values.get("eps")))
    suspect = f"every robustness number of {model} here is suspect"
    if base == "unbounded":
        return (f"PGD-{steps} at ε = 1 leaves {_p(sweep.get('1.0'))} accuracy on {model} (it should reach about 0): the "
                f"gradients likely lead nowhere; {suspect}")
    if base == "more_steps":
        return (f"PGD-{5 * steps} leaves {_p(values.get('pgd_5k'))} accuracy on {model}, more than PGD-{steps}'s {_p(at_eps)}: "
                f"more steps never help a model against a working attack; {suspect}")
    if base == "noise":
        return (f"PGD-{steps} leaves {_p(at_eps)} accuracy on {model}, but uniform noise of the same ε leaves "
                f"{_p(values.get('noise'))}: the attack does worse than noise; {suspect}")
    curve = ", ".join(f"{float(e) * 255:.3g}/255: {_p(a)}" for e, a in sweep.items())
    return f"accuracy on {model} rises with ε ({curve}): a larger budget never helps a model; {suspect}"


def fired_findings(rows: list[dict]) -> list[tuple[str, int]]:
    """(sentence, index of the first row of its run) per run and fired check, in the rows' order."""
    by_task: dict[str, list[tuple[int, dict]]] = {}
    for i, r in enumerate(rows):
        if (r.get("sanity_checks") or {}).get("fired"):
            by_task.setdefault(r["task"], []).append((i, r))
    found = []
    for task, indexed in by_task.items():
        first, row = indexed[0]
        sanity, mine = row["sanity_checks"], [r for _, r in indexed]
        for key in sanity["fired"]:
            base, method = _split(key)
            texts = [_gradient_check(base, sanity.get("values", {}), row["model"])] if base in (
                "unbounded", "more_steps", "noise", "eps_monotone") else _table_check(base, sanity[key], method or row.get("method", row["attack"]), row["model"], mine)
            found += [(f"sanity check failed ({task}): {text}", first) for text in texts]
    return found
