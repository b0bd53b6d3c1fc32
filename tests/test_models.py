import copy
import os
import stat

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from skinart.models.checkpoint import Checkpoint, CheckpointMeta, save_checkpoint
from skinart.errors import SkinartError
from skinart.models.networks import check_input_size, create_model, data_config, wrap
from skinart.models.build import network
from skinart.defences.deployed import deployed


def test_skin_cnn_is_registered_in_timm():
    import timm

    net = timm.create_model("skin_cnn", num_classes=7)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.Dropout) for m in net.modules())
    assert net(torch.rand(2, 3, 28, 28)).shape == (2, 7)


def test_unknown_model_names_close_matches():
    with pytest.raises(SkinartError, match="unknown model 'resnet19'.*resnet18"):
        create_model("resnet19")


def test_too_small_an_input_is_refused_before_training():
    net = create_model("inception_v3").train()
    with pytest.raises(SkinartError, match="inception_v3 cannot take 64 px images .*--img-size"):
        check_input_size(net, "inception_v3", 64)
    check_input_size(net, "inception_v3", 75)
    assert net.training  # the probe leaves the mode as it found it


def test_pretrained_offline_points_at_weights(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail fast instead of waiting on timeouts
    with pytest.raises(SkinartError, match="--weights"):
        create_model("resnet10t", pretrained=True)


def test_wrapped_classifier_normalises_inside_and_casts_to_float32():
    net = create_model("skin_cnn").eval()
    mean, std = data_config(net)
    classifier = wrap(net, 28, mean, std, "cpu")
    x = np.random.default_rng(0).random((4, 3, 28, 28))  # float64 on purpose (HopSkipJump under numpy 2)
    with torch.no_grad():
        expected = net((torch.from_numpy(x).float() - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    assert np.allclose(classifier.predict(x), expected.numpy(), atol=1e-5)
    assert classifier.clip_values[0] == 0 and classifier.clip_values[1] == 1
    assert classifier.preprocessing is None


def _checkpoint(tmp_path, name="skin_cnn"):
    net = create_model(name).eval()
    mean, std = data_config(net)
    save_checkpoint(tmp_path, net, CheckpointMeta(model=name, classes=("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"),
                                                  img_size=28, mean=mean, std=std, malignant=("mel",), data={"name": "dermamnist"}))
    return net


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    net = _checkpoint(tmp_path)
    checkpoint = Checkpoint.load(tmp_path)
    classifier = deployed(checkpoint, "cpu")
    x = np.random.default_rng(1).random((3, 3, 28, 28)).astype(np.float32)
    mean, std = data_config(net)
    assert np.allclose(classifier.predict(x), wrap(net, 28, mean, std, "cpu").predict(x), atol=1e-6)
    assert checkpoint.meta.model == "skin_cnn" and len(checkpoint.meta.weights_sha256) == 64


def test_the_weights_file_has_the_mode_of_every_other_file(tmp_path):
    """safetensors writes 0600; on a shared filesystem others must read the weights as they read skinart.json."""
    old = os.umask(0o022)
    try:
        _checkpoint(tmp_path)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes["model.safetensors"] == modes["skinart.json"] == 0o644, modes


def test_channels_last_weights_save_the_same_checkpoint_as_nchw(tmp_path):
    """wrap puts CPU weights channels-last for speed; the checkpoint must not depend on the layout."""
    net = create_model("skin_cnn").eval()
    nchw = copy.deepcopy(net)
    mean, std = data_config(net)
    classifier = wrap(net, 28, mean, std, "cpu")
    assert net.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    meta = CheckpointMeta(model="skin_cnn", classes=tuple("abcdefg"), img_size=28, mean=mean, std=std, malignant=("a",),
                          data={"name": "dermamnist"})
    saved = save_checkpoint(tmp_path / "nhwc", net, meta)
    assert saved.meta.weights_sha256 == save_checkpoint(tmp_path / "nchw", nchw, meta).meta.weights_sha256
    x = np.random.default_rng(2).random((3, 3, 28, 28)).astype(np.float32)
    assert np.allclose(deployed(Checkpoint.load(tmp_path / "nhwc"), "cpu").predict(x), classifier.predict(x), atol=1e-5)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(SkinartError, match="does not exist"):
        Checkpoint.load(tmp_path / "missing")
    with pytest.raises(SkinartError, match="not a skinart checkpoint"):
        Checkpoint.load(tmp_path)
    _checkpoint(tmp_path)
    (tmp_path / "skinart.json").write_text('{"format": "something-else"}')
    with pytest.raises(SkinartError, match="not a skinart-checkpoint"):
        Checkpoint.load(tmp_path)
    other = tmp_path / "other"
    _checkpoint(other)
    meta = (other / "skinart.json").read_text().replace('"skin_cnn"', '"resnet10t"')
    (other / "skinart.json").write_text(meta)
    with pytest.raises(SkinartError, match="does not fit model resnet10t"):
        network(Checkpoint.load(other))


def test_weights_file_loads_and_keeps_fresh_head_for_other_class_count(tmp_path):
    source = create_model("skin_cnn", num_classes=10)
    path = tmp_path / "ten_classes.safetensors"
    save_file(source.state_dict(), path)
    net = create_model("skin_cnn", num_classes=7, weights=path)
    assert torch.equal(net.features[0].weight, source.features[0].weight)
    assert net.fc.weight.shape == (7, 128)
    torch.save(source.state_dict(), tmp_path / "ten.pth")
    assert torch.equal(create_model("skin_cnn", weights=tmp_path / "ten.pth").features[0].weight, source.features[0].weight)


def test_weights_that_do_not_fit(tmp_path):
    path = tmp_path / "r10.safetensors"
    save_file(create_model("resnet10t").state_dict(), path)
    with pytest.raises(SkinartError, match="do not fit model skin_cnn"):
        create_model("skin_cnn", weights=path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SkinartError, match="cannot read weights"):
        create_model("skin_cnn", weights=tmp_path / "junk.pth")
    with pytest.raises(SkinartError, match="does not exist"):
        create_model("skin_cnn", weights=tmp_path / "absent.safetensors")
