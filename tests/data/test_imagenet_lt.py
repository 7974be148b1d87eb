import numpy as np
import pytest
import torch

from nclab.data.imagenet_lt import imagenet_lt, read_split
from nclab.errors import DataError


@pytest.fixture
def tree(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    lines = []
    for c, n in enumerate([4, 2, 1]):
        d = tmp_path / "train" / f"n{c:08d}"
        d.mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 256, size=(40 + 8 * i, 50, 3), dtype=np.uint8)
            ext = "JPEG" if i % 2 == 0 else "png"
            Image.fromarray(arr).save(d / f"img{i}.{ext}", format="JPEG" if ext == "JPEG" else "PNG")
            lines.append(f"train/n{c:08d}/img{i}.{ext} {c}")
    (tmp_path / "ImageNet_LT_train.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_reads_list_decodes_and_crops(tree):
    ds = imagenet_lt(tree, tree / "ImageNet_LT_train.txt", resize=36, crop=32, num_classes=3)
    assert len(ds) == 7 and ds.counts == [4, 2, 1]
    img, label = ds[0]
    assert img.dtype == torch.uint8 and img.shape == (3, 32, 32) and label == 0
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 3, 32, 32) and yb.tolist() == [0, 0, 0, 0]


def test_errors(tree, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_split(tmp_path / "none.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("a.jpg 1\nnot-a-line\n")
    with pytest.raises(DataError, match="line 2"):
        read_split(bad)
    (tree / "train" / "n00000000" / "img0.JPEG").write_bytes(b"not an image")
    ds = imagenet_lt(tree, tree / "ImageNet_LT_train.txt", resize=36, crop=32)
    with pytest.raises(DataError, match="cannot decode"):
        ds[0]
