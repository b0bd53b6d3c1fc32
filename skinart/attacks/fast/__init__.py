"""ART's attacks on fast paths: every skinart class that overrides, copies or reads ART internals (weights frozen,
batched scoring, one forward pass where ART makes several). Each file registers what it overrides with
`overrides.check_overrides`, so an ART upgrade that moves one of those names fails at import.

Part of the attack family (layer 3). This file imports nothing."""
