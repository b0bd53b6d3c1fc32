"""The defence family: the table of every defence (`table`: `DEFENCES`, the retraining options), the preprocessing
defences (`preprocessors`: WebP+flip, EOT, ART's preprocessors) and a checkpoint as deployed, behind the
preprocessors its metadata names (`deployed`). Training defences run in `runs/retrain.py`.

Layer 3, beside attacks (a training defence names the attacks it trains on): imports models, `toolbox`, the
foundation and `skinart.attacks.table`; never runs or anything above. This file imports nothing."""
