"""The attack family: the method table (`table`: `METHODS`, every attack a row), an attack run's options (`config`),
the generate loops (`loops`), skinart's own SGD UAP (`universal`), the poisons (`poisons`), the sanity checks every
attacked evaluation reports (`sanity`) and progress lines (`progress`). Every subclass that overrides ART internals
lives in `fast/`, each checked at import by `fast.overrides.check_overrides`.

Layer 3: imports models, defences, `toolbox` and the foundation; never runs or anything above. This file imports
nothing."""
