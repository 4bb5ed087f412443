import gzip

import numpy as np
import pytest
import torch

from hwr.data.idx import find_idx, read_idx, write_idx
from hwr.errors import HwrError


@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_roundtrip_plain_and_gz(tmp_path, name):
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / name, data)
    out = read_idx(path)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 4)
    assert torch.equal(out, torch.from_numpy(data))


def test_find_prefers_plain_then_gz(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((1, 2, 2), np.uint8))
    assert find_idx(tmp_path, "a") == tmp_path / "a.gz"
    write_idx(tmp_path / "a", np.zeros((1, 2, 2), np.uint8))
    assert find_idx(tmp_path, "a") == tmp_path / "a"
    assert find_idx(tmp_path, "b") is None


def test_truncated_file_names_the_problem(tmp_path):
    path = write_idx(tmp_path / "t-idx3-ubyte", np.ones((10, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(HwrError, match=r"t-idx3-ubyte is truncated .*download it again"):
        read_idx(path)


def test_truncated_gzip_stream_is_a_clear_error(tmp_path):
    path = write_idx(tmp_path / "t-idx3-ubyte.gz", np.random.randint(0, 255, (50, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(HwrError, match=r"cannot read .*t-idx3-ubyte.gz"):
        read_idx(path)


def test_not_idx(tmp_path):
    path = tmp_path / "junk.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"<html>not found</html>")
    with pytest.raises(HwrError, match="not an IDX file"):
        read_idx(path)
