"""Reports. `figures` and `tables` present one run (every run kind writes its own); `study` reads a whole
recipe run and writes report.md / report.html / report.json. The two halves sit at different layers:
per-run presentation below the run modules, the study report above them (see ARCHITECTURE.md)."""
