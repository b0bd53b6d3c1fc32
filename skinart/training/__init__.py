"""Training: the input pipeline (`batches`: augmentations, one DataLoader for a whole training) and the loop over ART's
`fit_generator` (`loop`: `TrainConfig`, `train`, kept after each epoch for a resume). Retraining defences and
poisoning call it.

Layer 3: imports models, `toolbox` and the foundation; never runs or anything above. This file imports nothing."""
