"""The step commands (train, import, evaluate, attack, defend, report), a module per family of commands, over what
they share (`common`), with the checked configuration each builds (`checks`, which recipes call for every step before
the first runs) and the table of them (`steps`).

Layer 6: the modules import, at their top, only typer and the foundation (`data`, `errors`); each command imports what
it runs in its body, so `--help` never loads torch. This file imports nothing."""
