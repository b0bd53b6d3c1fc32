"""Natural shifts: seeded, deterministic corruptions and dermoscopy artefacts of uint8 images at the model's input
size, at severities 1–5 (DESIGN.md, "Natural shifts"; issue 36).

`table` holds `SHIFTS` (one documented row per shift), the option parsers and `apply_shift`; the shifts live one
family to a module (`noise`, `blur`, `digital`, `occlusion`, `artefacts`), on the helpers of `draws` (per-image
random streams), `pixels` and `drawing`; `statistics` measures what each severity does; `gallery` draws the
figure of every shift × severity.

The package sits at layer 1: it imports from skinart only `errors` and `options` (and may use `presentation`),
and otherwise numpy, scipy, Pillow, torchvision and matplotlib. Nothing is imported here, so importing one module
of the package loads only what that module needs.
"""
