"""Bad data: named at once, with its file, before it can stop or quietly spoil a run."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SIZE, TinyGenerator, make_trainer
from PIL import Image
from torch.utils.data import DataLoader, Subset

from s4seg.data import FolderDataset, InfiniteLoader, SyntheticShapes, Unlabelled
from s4seg.data.folder import DatasetProblems
from s4seg.training import Trainer, TrainerConfig


def image(seed: int, h: int = 8, w: int = 8) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def mask(h: int = 8, w: int = 8, classes: int = 3) -> Image.Image:
    # Class regions with many edges: what lossy compression damages.
    return Image.fromarray((np.add.outer(np.arange(h), np.arange(w)) % classes).astype(np.uint8))


def dataset(root: Path, n: int = 4, size: int = 8) -> Path:
    for i in range(n):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        image(i, size, size).save(root / "images" / f"{i}.png")
        mask(size, size).save(root / "masks" / f"{i}.png")
    return root


def test_jpeg_bytes_under_a_png_mask_name_are_refused_not_mislabelled(tmp_path):
    root = dataset(tmp_path, 2, size=32)
    mask(32, 32).convert("L").save(root / "masks" / "1.png", format="JPEG", quality=75)
    ds = FolderDataset(root, num_classes=3)
    ds[0]
    with pytest.raises(ValueError, match=r"masks/1\.png' is a JPEG file"):
        ds[1]  # before: loaded, with lossy-compression classes in a quarter of its pixels


def test_a_dangling_symlink_is_named_not_dropped(tmp_path):
    root = dataset(tmp_path, 3)
    (root / "images" / "1.png").unlink()
    os.symlink(tmp_path / "gone" / "1.png", root / "images" / "1.png")
    with pytest.raises(
        FileNotFoundError, match=r"symbolic links to files that do not exist: '1\.png'"
    ):
        FolderDataset(root)  # before: a dataset of 2 images, without a word


def test_a_folder_of_dangling_symlinks_does_not_say_it_contains_images(tmp_path):
    (tmp_path / "images").mkdir()
    for i in range(2):
        os.symlink(tmp_path / "gone" / f"{i}.png", tmp_path / "images" / f"{i}.png")
    with pytest.raises(FileNotFoundError) as info:
        FolderDataset(tmp_path, labelled=False)
    assert "contains e.g." not in str(info.value) and "2 file(s)" in str(info.value)


def damage(root: Path) -> dict[str, str]:
    """A dataset of 8 with one file broken in each way; the expected complaint of each."""
    dataset(root, 8)
    png = (root / "images" / "1.png").read_bytes()
    (root / "images" / "1.png").write_bytes(png[: len(png) // 2])  # truncated
    (root / "images" / "2.png").write_bytes(b"")  # empty
    (root / "images" / "3.png").write_bytes(b"not an image at all")
    buf = io.BytesIO()
    mask().save(buf, format="JPEG")
    (root / "masks" / "4.png").write_bytes(buf.getvalue())  # JPEG under .png
    mask(8, 6).save(root / "masks" / "5.png")  # wrong size
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "masks" / "6.png")  # RGB mask
    return {
        "images/1.png": "truncated PNG image",
        "images/2.png": "empty image file",
        "images/3.png": "not a readable image",
        "masks/4.png": "is a JPEG file",
        "masks/5.png": "mask is 8x6 (HxW) but its image is 8x8",
        "masks/6.png": "mode 'RGB'",
    }


def test_verify_reports_every_bad_file_at_once_with_its_path(tmp_path):
    expected = damage(tmp_path)
    ds = FolderDataset(tmp_path, num_classes=3)
    with pytest.raises(DatasetProblems) as info:
        ds.verify(progress=False, workers=2)
    found = {str(Path(p).relative_to(tmp_path)): what for p, what in info.value.problems}
    assert found.keys() == expected.keys()
    for name, words in expected.items():
        assert words in found[name], (name, found[name])
        assert name in str(info.value)
    assert FolderDataset(dataset(tmp_path / "good", 4)).verify(progress=False) == 4


def test_verify_full_decodes_and_checks_mask_values(tmp_path):
    root = dataset(tmp_path, 3)
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(root / "masks" / "2.png")
    ds = FolderDataset(root, num_classes=3)
    assert ds.verify(progress=False) == 3  # headers are fine
    with pytest.raises(DatasetProblems, match=r"masks/2\.png.*value\(s\) 7"):
        ds.verify(full=True, progress=False)


def test_every_decode_error_names_its_file_also_through_workers(tmp_path):
    root = dataset(tmp_path, 4)
    png = (root / "images" / "2.png").read_bytes()
    (root / "images" / "2.png").write_bytes(png[: len(png) // 2])
    ds = FolderDataset(root, labelled=False)
    with pytest.raises(OSError, match=r"cannot read image '.*images/2\.png'"):
        ds[2]  # before: Pillow's "image file is truncated", naming no file
    loader = InfiniteLoader(ds, 4, shuffle=False, num_workers=1)
    with pytest.raises(OSError, match=r"images/2\.png"):
        next(loader)


def test_images_of_mixed_sizes_name_their_files_instead_of_torch_stack(tmp_path):
    root = dataset(tmp_path, 2)
    image(9, 12, 10).save(root / "images" / "1.png")
    mask(12, 10).save(root / "masks" / "1.png")
    loader = InfiniteLoader(FolderDataset(root), 2, shuffle=False)
    with pytest.raises(ValueError, match=r"cannot collate batch 0 of epoch 0.*images/0\.png.*crop"):
        next(loader)


def loaders():
    data = SyntheticShapes(8, image_size=SIZE)
    return data, InfiniteLoader(data, 2)


def test_a_plain_dataloader_as_a_training_loader_says_what_to_use():
    data, _ = loaders()
    with pytest.raises(TypeError, match=r"labelled_loader is a DataLoader.*InfiniteLoader"):
        Trainer(
            TinyGenerator(),
            DataLoader(data, batch_size=2),
            config=TrainerConfig(method="supervised", device="cpu"),
        )


def test_an_infinite_val_loader_is_refused():
    data, loader = loaders()
    with pytest.raises(TypeError, match="never ends"):
        Trainer(
            TinyGenerator(),
            loader,
            val_loader=InfiniteLoader(data, 2),
            config=TrainerConfig(method="supervised", device="cpu"),
        )


class Tuples:
    """An iterator of (image, mask) tuples, as torchvision datasets give."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.loader)
        return batch["image"], batch["mask"]


def test_a_wrong_batch_type_from_the_unlabelled_loader_names_that_loader():
    t = make_trainer()
    t.loaders["unlabelled"] = Tuples(InfiniteLoader(SyntheticShapes(8, image_size=SIZE), 2))
    with pytest.raises(TypeError, match=r"unlabelled loader must yield dicts.*tuple of 2 items"):
        t.train_step()


class Cast:
    def __init__(self, loader, **dtypes) -> None:
        self.loader, self.dtypes = loader, dtypes

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.loader)
        return {k: v.to(self.dtypes[k]) if k in self.dtypes else v for k, v in batch.items()}


@pytest.mark.parametrize(
    ("dtypes", "words"),
    [
        ({"image": torch.uint8}, r"labelled loader yielded 'image' as a torch.uint8 tensor.*/ 255"),
        (
            {"image": torch.float64},
            r"torch.float64 images but the generator's weights are torch.float32",
        ),
        ({"mask": torch.float32}, r"'mask' as a torch.float32 tensor.*\.long\(\)"),
    ],
)
def test_images_or_masks_of_an_unexpected_dtype_are_named(dtypes, words):
    t = make_trainer(method="supervised")
    data = Subset(SyntheticShapes(8, image_size=SIZE), range(8))
    t.loaders["labelled"] = Cast(InfiniteLoader(data, 2), **dtypes)
    with pytest.raises(TypeError, match=words):
        t.train_step()


def test_unlabelled_items_keep_working():
    t = make_trainer()
    t.loaders["unlabelled"] = InfiniteLoader(Unlabelled(SyntheticShapes(8, image_size=SIZE)), 2)
    t.train_step()
