import hydra
import pytest
import torch

from hwr.errors import HwrError
from hwr.models.cnn import CNN
from hwr.models.ensemble import Ensemble, shifted, tta_logits
from hwr.models.mlp import MLP
from hwr.models.resnet import ResNet
from hwr.runs.entry import compose_config


@pytest.mark.parametrize("batchnorm", [False, True])
def test_mlp_shapes(batchnorm):
    net = MLP((1, 28, 28), 47, hidden=[64, 32], batchnorm=batchnorm)
    assert net(torch.randn(5, 1, 28, 28)).shape == (5, 47)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == batchnorm


@pytest.mark.parametrize("size,channels", [(28, (8, 16, 32)), (28, (8, 16, 32, 64)), (32, (8, 16))])
def test_cnn_shapes(size, channels):
    net = CNN((1, size, size), 62, channels=channels, convs_per_block=2, head=[32])
    assert net(torch.randn(3, 1, size, size)).shape == (3, 62)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 2 * len(channels)


def test_cnn_too_many_blocks_for_image():
    with pytest.raises(HwrError, match="at least 32 px"):
        CNN((1, 28, 28), 10, channels=(8, 8, 8, 8, 8))


def test_shifted_moves_the_ink_and_keeps_the_background():
    x = torch.full((1, 1, 8, 8), -0.5)  # a normalised black background is not 0
    x[0, 0, 3, 4] = 2.0
    moved = shifted(x, 1, -2)
    assert moved.shape == x.shape
    assert moved[0, 0, 4, 2] == 2.0 and (moved == 2.0).sum() == 1
    assert torch.all(moved[moved != 2.0] == -0.5)  # no zero-padded grey edge


def test_tta_and_ensemble_average_probabilities():
    torch.manual_seed(0)
    nets = [CNN((1, 28, 28), 10, channels=(8, 16), head=[16]).eval() for _ in range(2)]
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(tta_logits(nets[0], x, 0), nets[0](x))
    mean = (nets[0](x).softmax(-1) + nets[1](x).softmax(-1)) / 2
    assert torch.allclose(Ensemble(nets)(x).softmax(-1), mean, atol=1e-6)
    # 9 views: the identity plus the 8 one-pixel shifts, each weighted equally
    views = [nets[0](shifted(x, dy, dx)).softmax(-1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    assert torch.allclose(tta_logits(nets[0], x, 1).exp(), torch.stack(views).mean(0), atol=1e-6)


@pytest.mark.parametrize(
    "size,channels,blocks", [(28, (8, 16, 32), 2), (32, (8, 16, 32, 64), 1), (28, (8,), 1)]
)
def test_resnet_shapes(size, channels, blocks):
    net = ResNet((1, size, size), 62, channels=channels, blocks_per_stage=blocks)
    assert net(torch.randn(3, 1, size, size)).shape == (3, 62)
    # one 1x1 shortcut conv per stage after the first, and no conv bias anywhere
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sum(m.kernel_size == (1, 1) for m in convs) == len(channels) - 1
    assert all(m.bias is None for m in convs)


def test_resnet_too_many_stages_for_image():
    with pytest.raises(HwrError, match="at least 32 px, got 28x28"):
        ResNet((1, 28, 28), 10, channels=(8, 8, 8, 8, 8))


def test_resnet_config_composes_and_learns(tmp_path):
    cfg = compose_config("train", ["model=resnet", f"paths.output_dir={tmp_path}"])
    assert cfg.model.net._target_ == "hwr.models.resnet.ResNet"
    net = hydra.utils.instantiate(cfg.model.net, input_shape=[1, 28, 28], num_classes=10)
    assert 300_000 < sum(p.numel() for p in net.parameters()) < 700_000  # sized for a CPU epoch
    # the config's blocks and dropout with narrow stages, so that 20 steps take a second on a CPU
    torch.manual_seed(0)
    net = hydra.utils.instantiate(
        cfg.model.net, input_shape=[1, 28, 28], num_classes=10, channels=[8, 16, 32]
    )
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
