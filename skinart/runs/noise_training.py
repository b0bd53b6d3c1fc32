"""`skinart defend --method randomized-smoothing`: a checkpoint fine-tuned under Gaussian noise of σ through ART's
randomized-smoothing classes (`certification.table.VARIANTS`), from its own training settings (or another class
balance); the run directory is the new checkpoint, which records σ, the variant and how it predicts (its `defence`):
every command deploys it as the smoothed classifier, whose p_malignant its operating point is chosen on, and whose
clean test metrics the run writes. `skinart certify` reads σ from it."""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from pathlib import Path

from skinart.certification.smoothing import smoothed
from skinart.certification.table import SMOOTHED_PREDICTION, VARIANTS, NoiseTrainingConfig
from skinart.certification.training import noise_trainer
from skinart.defences.deployed import deployed
from skinart.errors import SkinartError
from skinart.models.checkpoint import Checkpoint
from skinart.models.provenance import checkpoint_dataset
from skinart.rundir import RunDir, RunOptions, resolved
from skinart.runs.scoring import evaluate
from skinart.training.loop import retraining_config, train

METHOD = "randomized-smoothing"


def noise_training_run(cfg: NoiseTrainingConfig, checkpoint: Checkpoint, out: Path, options: RunOptions) -> dict | None:
    """Fine-tune `checkpoint` with `cfg.variant`'s ART class at σ for `cfg.epochs` (default: its own epochs); None when
    `out` already holds this run."""
    cfg.check()
    if checkpoint.meta.preprocessing:
        raise SkinartError(f"{checkpoint} carries a preprocessing defence, which ART would apply after the noise in training "
                           "and before it in certifying; train its source checkpoint under noise")
    train_cfg = retraining_config(checkpoint, METHOD)
    train_cfg.epochs, train_cfg.balance = cfg.epochs or train_cfg.epochs, cfg.balance or train_cfg.balance
    train_cfg.weights, train_cfg.pretrained = None, False  # from the checkpoint's own weights
    run = RunDir("defend", out, options, checkpoint=checkpoint, data=options.data_ref(checkpoint.data_name()), method=METHOD,
                 noise=asdict(cfg), train=asdict(train_cfg), seed=train_cfg.seed)
    if run.done:
        return None
    dataset = checkpoint_dataset(checkpoint, data=options.data, data_root=options.data_root)
    row = VARIANTS[cfg.variant]
    prediction = {**SMOOTHED_PREDICTION, "n": cfg.n}
    defence = {"defence": {"method": METHOD, "source": resolved(checkpoint.path), "variant": cfg.variant, "sigma": cfg.sigma,
                           "art_class": row.art_class, "art_parameters": row.defaults, "epochs": train_cfg.epochs,
                           "balance": train_cfg.balance, "prediction": prediction},
               **checkpoint.lineage()}
    # t is chosen on the smoothed p_malignant (the share of the noisy copies voting a malignant class), as deployed
    deployed_as = partial(smoothed, sigma=cfg.sigma, sample_size=prediction["eot"], votes=prediction["n"], seed=prediction["seed"])
    malignant = list(checkpoint.meta.malignant)
    with run.staged() as tmp:
        trained = train(dataset, train_cfg, tmp, device=options.device, malignant=malignant, trainer=noise_trainer(cfg.variant, cfg.sigma),
                        extra_meta=defence, start=checkpoint, resume=run.resume_folder, deployed_as=deployed_as)["checkpoint"]
        return evaluate(deployed(trained, options.device, precision=options.precision), dataset.splits["test"], trained,
                        malignant=malignant, out=tmp, kind="defend",
                        title=f"{checkpoint.meta.model} trained under noise σ {cfg.sigma:g} ({cfg.variant}) on {dataset.name} test")
