"""The model family: timm networks by name and their ART wrapping (`networks`), offline ImageNet starts (`weights`),
models trained outside skinart (`foreign`), and the checkpoint: its metadata as pure data, read once
(`checkpoint`), and what is built from it (`build`: the network; `provenance`: its data, checked).

Layer 2: imports the foundation (errors, options, compute, rundir, metrics, data) and `toolbox`; never attacks,
defences, runs or anything above. Import from the modules; this file imports nothing."""
