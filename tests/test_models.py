import pytest
import torch

from hwr.errors import HwrError
from hwr.models.cnn import CNN
from hwr.models.mlp import MLP


@pytest.mark.parametrize("batchnorm", [False, True])
def test_mlp_shapes(batchnorm):
    net = MLP((1, 28, 28), 47, hidden=[64, 32], batchnorm=batchnorm)
    assert net(torch.randn(5, 1, 28, 28)).shape == (5, 47)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == batchnorm


@pytest.mark.parametrize("size,channels", [(28, (8, 16, 32)), (28, (8, 16, 32, 64)), (32, (8, 16))])
def test_cnn_shapes(size, channels):
    net = CNN((1, size, size), 62, channels=channels, head=[32])
    assert net(torch.randn(3, 1, size, size)).shape == (3, 62)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 2 * len(channels)


def test_cnn_too_many_blocks_for_image():
    with pytest.raises(HwrError, match="at least 32 px"):
        CNN((1, 28, 28), 10, channels=(8, 8, 8, 8, 8))
