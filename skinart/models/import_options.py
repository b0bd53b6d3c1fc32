"""What `skinart import` takes, checked before its file is read: `ImportConfig` (the file, the model's outputs by name,
its input, the operating point), the outputs' names (`parse_outputs`) and the normalisation (`parse_channels`). Pure
data: the command checks (and a recipe's validation) read it without loading torch or timm; `models.model_files` and
`models.foreign` read the file, `runs.imported` runs the import."""

from __future__ import annotations

from dataclasses import dataclass

from skinart.data import CLASSES, DEFAULT_MALIGNANT, EXTRA_CLASSES, MALIGNANT_EXTRA_CLASSES, RESIZE_METHODS
from skinart.errors import SkinartError
from skinart.options import check_file, choose, parse_malignant

GIVE = ("pass a torch.export .pt2, a TorchScript archive, an ONNX file, a .safetensors/.pth state dict (with --model), "
        "hf-hub:ORG/NAME or local-dir:FOLDER (timm's config.json and weights)")
HUB_PREFIXES = ("hf-hub:", "local-dir:")  # models that bring their own config, read by timm
BINARIES = (("benign", "malignant"), ("other", "mel"))  # a binary model's (negative, positive) outputs
ALIASES = {"ak": "akiec"}  # ISIC 2019's name for actinic keratoses and intraepithelial carcinoma


def parse_outputs(text: str, malignant: str | None) -> tuple[tuple[str, ...], tuple[str, ...], dict | None, list[str]]:
    """(the model's outputs in its own order, the checkpoint's classes, the data's classes -> the checkpoint's or None
    when they are the same, the malignant classes), every output by name: the data's classes (ISIC 2019's ak for
    akiec) and outputs the data lack (scc, unk: predicting them is an error, scc's probability malignant), or a binary
    model: benign,malignant (one logit: malignant; the data's --malignant classes are its positive) or melanoma against
    the rest (other,mel; one logit: mel)."""
    outputs = tuple(ALIASES.get(n, n) for n in (n.strip().lower() for n in str(text).split(",")) if n)
    if len(set(outputs)) != len(outputs) or not outputs:
        raise SkinartError(f"--classes {text!r}: name each of the model's outputs once, in its own order, e.g. mel,nv,bcc,akiec,bkl,df,vasc")
    data_malignant = parse_malignant(malignant or ",".join(DEFAULT_MALIGNANT), CLASSES)
    for negative, positive in BINARIES:
        if set(outputs) in ({positive}, {negative, positive}):
            stands = data_malignant if positive == "malignant" else [positive]
            return outputs, (negative, positive), {c: positive if c in stands else negative for c in CLASSES}, [positive]
    unknown = [n for n in outputs if n not in CLASSES and n not in EXTRA_CLASSES]
    if unknown:
        raise SkinartError(f"--classes names {', '.join(unknown)}, which are no class; name the outputs with {', '.join(CLASSES)} "
                           f"(ISIC 2019's ak for akiec), {', '.join(EXTRA_CLASSES)} for outputs the data lack, or as a binary "
                           "model: benign,malignant (malignant, one logit) or other,mel (mel, one logit)")
    missing = [c for c in CLASSES if c not in outputs]
    if missing:
        raise SkinartError(f"--classes lists {len(CLASSES) - len(missing)} of the {len(CLASSES)} classes (missing {', '.join(missing)}); "
                           "a model is compared on every class of the data, or as binary: benign,malignant (or malignant, "
                           "one logit) or other,mel (mel)")
    extra = tuple(n for n in outputs if n in EXTRA_CLASSES)
    classes = CLASSES + extra
    return outputs, classes, {c: c for c in CLASSES} if extra else None, \
        data_malignant + [c for c in extra if c in MALIGNANT_EXTRA_CLASSES]


def parse_channels(text: str | None, option: str, default: float) -> tuple[float, ...]:
    """--mean/--std: three numbers (RGB) applied to [0, 1] pixels; none given: the identity."""
    if text is None:
        return (default,) * 3
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise SkinartError(f"{option} {text!r} is not three numbers; write e.g. {option} 0.485,0.456,0.406") from None
    if len(values) != 3 or (option == "--std" and min(values) <= 0):
        raise SkinartError(f"{option} {text!r}: give three numbers, one per RGB channel{' (each > 0)' if option == '--std' else ''}")
    return values


@dataclass(frozen=True)
class ImportConfig:
    """`skinart import`'s own options: the file, the model's outputs in its own order, its input (size, resize,
    normalisation) and the operating point (given, or chosen on the validation split for a target sensitivity)."""

    weights: str
    classes: str | None = None  # a hub or local-dir model's own label_names when not given
    img_size: int | None = None  # a hub or local-dir model's own input size when not given
    model: str | None = None
    mean: str | None = None
    std: str | None = None
    resize: str = "crop"
    state_key: str | None = None
    threshold: float | None = None
    target_sensitivity: float | None = None

    def check(self, malignant: str | None = None) -> tuple:
        """(outputs, classes, label map, malignant classes, mean, std), refusing in one line what can be told without
        reading the file (a recipe that imports it is refused before its first step)."""
        if self.weights.startswith("hf-hub:") and not self.weights.removeprefix("hf-hub:").strip():
            raise SkinartError("--weights hf-hub: names no model; write hf-hub:ORG/NAME, e.g. hf-hub:timm/resnet18.a1_in1k")
        hub = self.weights.startswith(HUB_PREFIXES)
        if not hub:
            check_file(self.weights, "--weights", GIVE)
        if not hub and (self.classes is None or self.img_size is None):
            raise SkinartError(f"--classes and --img-size name {self.weights}'s outputs and the side it takes: give both (only "
                               "a hf-hub: or local-dir: model brings its own)")
        if self.img_size is not None and self.img_size < 8:
            raise SkinartError(f"--img-size {self.img_size}: give the side in px the model takes (at least 8)")
        choose(self.resize, RESIZE_METHODS, "--resize")
        if self.threshold is not None and self.target_sensitivity is not None:
            raise SkinartError("--threshold is the owner's operating point and --target-sensitivity chooses one: give one of them")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise SkinartError(f"--threshold {self.threshold} is not a probability; give the p_malignant threshold in [0, 1]")
        if self.target_sensitivity is not None and not 0 < self.target_sensitivity <= 1:
            raise SkinartError(f"--target-sensitivity must be in (0, 1], got {self.target_sensitivity}")
        if (self.mean is None) != (self.std is None):
            raise SkinartError("--mean and --std are the model's normalisation together: give both, or neither (the model takes [0, 1])")
        named = parse_outputs(self.classes, malignant) if self.classes is not None else (None,) * 4
        return (*named, parse_channels(self.mean, "--mean", 0.0), parse_channels(self.std, "--std", 1.0))
