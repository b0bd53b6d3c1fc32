"""Run kinds: one module per kind of run directory (train, evaluate, attack, …), each a function that takes the
`Checkpoint`s it reads and a `RunContext`, checks its configuration, skips when done and writes through `RunDir`."""
