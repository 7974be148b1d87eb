"""ImageNet-LT (Liu et al., CVPR 2019) from its split list files and an image root.

A list file has one ``relative/path.JPEG label`` per line (``ImageNet_LT_train.txt``, ``_val``,
``_test``). Images are decoded with Pillow inside DataLoader workers (``ImageListDataset``), resized
(shorter side ``resize``) and centre-cropped to ``crop`` pixels, and returned as uint8 CHW tensors;
the training loop normalises and augments them in batches on the device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nclab.errors import DataError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def read_split(list_file: str | Path) -> tuple[list[str], np.ndarray]:
    """Paths and int labels of a split list; malformed lines are errors with their line number."""
    p = Path(list_file)
    if not p.is_file():
        raise DataError(f"split list {p} does not exist (ImageNet-LT lists: ImageNet_LT_train.txt, ...)")
    paths, labels = [], []
    for i, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(f"{p} line {i}: expected 'path label', got {line!r}")
        paths.append(parts[0])
        labels.append(int(parts[1]))
    if not paths:
        raise DataError(f"{p} lists no images")
    y = np.asarray(labels, dtype=np.int64)
    if y.min() < 0:
        raise DataError(f"{p}: negative labels")
    return paths, y


class ImageListDataset(torch.utils.data.Dataset):
    """(uint8 image (3, crop, crop), label) pairs from a split list and an image root."""

    def __init__(
        self,
        root: str | Path,
        list_file: str | Path,
        *,
        resize: int = 256,
        crop: int = 224,
        num_classes: int | None = None,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"image root {self.root} does not exist")
        self.paths, labels = read_split(list_file)
        self.labels = torch.from_numpy(labels)
        k = num_classes or int(labels.max()) + 1
        self.counts = torch.bincount(self.labels, minlength=k).tolist()
        self.resize, self.crop = int(resize), int(crop)
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from nclab.extras import require

        require("PIL", what="ImageNet-LT images")
        from PIL import Image, UnidentifiedImageError

        path = self.root / self.paths[i]
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                w, h = im.size
                s = self.resize / min(w, h)
                im = im.resize((max(self.crop, round(w * s)), max(self.crop, round(h * s))), Image.BILINEAR)
                w, h = im.size
                left, top = (w - self.crop) // 2, (h - self.crop) // 2
                im = im.crop((left, top, left + self.crop, top + self.crop))
                arr = np.asarray(im, dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as err:
            raise DataError(f"cannot decode {path}: {err}") from None
        return torch.from_numpy(arr.copy()).permute(2, 0, 1), int(self.labels[i])


def imagenet_lt(
    root: str | Path, list_file: str | Path, *, resize: int = 256, crop: int = 224, num_classes: int = 1000
) -> ImageListDataset:
    """The ImageNet-LT split of ``list_file`` under ``root`` as a Dataset (see module docstring)."""
    return ImageListDataset(root, list_file, resize=resize, crop=crop, num_classes=num_classes)
