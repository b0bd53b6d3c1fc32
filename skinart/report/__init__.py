"""The study report: `rows` reads every run by its kind (`runs` finds and checks run directories given by hand), `charts`
draws its figures, `study` writes report.md / report.html / report.json over them."""
