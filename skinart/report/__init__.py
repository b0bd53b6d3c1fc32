"""The study report: `rows` reads every run of a recipe run by its kind, `study` writes report.md / report.html /
report.json over them."""
