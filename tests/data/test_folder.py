from __future__ import annotations

import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from s4seg.data import FolderDataset
from s4seg.data.index_cache import PackedNames


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write(path: Path, array: np.ndarray) -> Path:
    # PIL infers the mode: (H, W, 4) uint8 RGBA, (H, W, 2) LA, uint16 I;16, float32 F.
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def palette_mask(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array.astype(np.uint8)).convert("P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    im.save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path / "images" / "b.png", rgb(4, 5, 1))
    write(tmp_path / "images" / "a.png", rgb(4, 5, 2))
    write(tmp_path / "masks" / "a.png", np.array([[0, 1, 2, 255, 0]] * 4, dtype=np.uint8))
    palette_mask(tmp_path / "masks" / "b.png", np.array([[2, 1, 0, 0, 1]] * 4))
    return tmp_path


def test_reads_pairs_sorted_by_stem(folder: Path) -> None:
    ds = FolderDataset(folder, num_classes=3)
    assert len(ds) == 2 and ds.stem(0) == "a" and ds.stem(1) == "b"
    item = ds[0]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 4, 5)
    expected = torch.from_numpy(rgb(4, 5, 2)).permute(2, 0, 1).float() / 255
    assert torch.equal(item["image"], expected)
    assert item["mask"].dtype == torch.int64
    assert item["mask"][0].tolist() == [0, 1, 2, 255, 0]
    # Palette masks are read as indices, not palette colours.
    assert ds[1]["mask"][0].tolist() == [2, 1, 0, 0, 1]
    assert ds.mask_path(1) == folder / "masks" / "b.png"


def test_unlabelled_folder_needs_no_masks(tmp_path: Path) -> None:
    write(tmp_path / "images" / "x.jpg", rgb(6, 6))
    ds = FolderDataset(tmp_path, labelled=False)
    assert set(ds[0]) == {"image"} and ds[0]["image"].shape == (3, 6, 6)
    with pytest.raises(ValueError, match="unlabelled"):
        ds.mask_path(0)


def test_ignores_hidden_and_other_files_and_matches_suffix_case(tmp_path: Path) -> None:
    write(tmp_path / "images" / "A.PNG", rgb(3, 3))
    (tmp_path / "images" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "images" / "notes.txt").write_text("hi")
    (tmp_path / "images" / "sub.png").mkdir()  # a folder named like an image
    write(tmp_path / "masks" / "A.png", np.zeros((3, 3), dtype=np.uint8))
    ds = FolderDataset(tmp_path)
    assert len(ds) == 1 and ds.image_path(0).name == "A.PNG"


def test_grayscale_is_replicated_and_opaque_rgba_is_rgb(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    write(tmp_path / "images" / "g.png", gray)
    colour = rgb(3, 4)
    rgba = np.concatenate([colour, np.full((3, 4, 1), 255, np.uint8)], axis=2)
    write(tmp_path / "images" / "o.png", rgba)
    ds = FolderDataset(tmp_path, labelled=False)
    g = ds[0]["image"]
    assert torch.equal(g[0], g[1]) and torch.equal(g[0], g[2])
    assert torch.equal(g[0], torch.from_numpy(gray).float() / 255)
    assert torch.equal(ds[1]["image"], torch.from_numpy(colour).permute(2, 0, 1).float() / 255)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.full((3, 4, 4), 100, np.uint8), "RGBA with transparency"),
        (np.full((3, 4, 2), 100, np.uint8), "LA with transparency"),
        (np.full((3, 4), 1000, np.uint16), r"mode 'I;16' \(1 channel"),
    ],
)
def test_unsupported_images_name_file_and_mode(tmp_path: Path, array, match) -> None:
    path = write(tmp_path / "images" / "bad.png", array)
    ds = FolderDataset(tmp_path, labelled=False)
    with pytest.raises(ValueError, match=match) as info:
        ds[0]
    assert str(path) in str(info.value)


def test_float_tiff_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((3, 3), np.float32)).save(tmp_path / "images" / "f.tif")
    with pytest.raises(ValueError, match=r"mode 'F'.*8-bit RGB"):
        FolderDataset(tmp_path, labelled=False)[0]


def test_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        FolderDataset(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"image folder .*images.* image_dir="):
        FolderDataset(tmp_path)
    write(tmp_path / "images" / "a.png", rgb(2, 2))
    with pytest.raises(FileNotFoundError, match=r"mask folder .*masks.*labelled=False"):
        FolderDataset(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no images .* is empty"):
        FolderDataset(tmp_path, image_dir="empty")


def test_images_without_masks_are_listed_at_construction(tmp_path: Path) -> None:
    for i in range(8):
        write(tmp_path / "images" / f"im{i}.png", rgb(2, 2))
    write(tmp_path / "masks" / "im3.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(FileNotFoundError) as info:
        FolderDataset(tmp_path)
    msg = str(info.value)
    assert "7 of 8 labelled images have no mask" in msg
    assert "im0.png" in msg and "im5.png" in msg and "and 2 more" in msg
    assert "im7.png" not in msg and "labelled=False" in msg
    assert "im3.png" in msg  # the masks that do exist are shown as a naming hint


def test_jpeg_masks_get_a_hint(tmp_path: Path) -> None:
    write(tmp_path / "images" / "a.png", rgb(2, 2))
    write(tmp_path / "masks" / "a.jpg", rgb(2, 2))
    with pytest.raises(FileNotFoundError, match="not PNG"):
        FolderDataset(tmp_path)


def test_mask_value_out_of_range_names_file_and_values(folder: Path) -> None:
    write(folder / "masks" / "a.png", np.array([[0, 7, 9, 255, 7]] * 4, dtype=np.uint8))
    ds = FolderDataset(folder, num_classes=3)
    with pytest.raises(ValueError) as info:
        ds[0]
    msg = str(info.value)
    assert str(folder / "masks" / "a.png") in msg
    assert "value(s) 7, 9 " in msg and "[0, 3)" in msg and "(12 pixels)" in msg
    ds[1]  # the other mask is fine
    FolderDataset(folder)[0]  # without num_classes nothing is range-checked


def test_sixteen_bit_masks_hold_many_classes(tmp_path: Path) -> None:
    write(tmp_path / "images" / "a.png", rgb(2, 3))
    write(tmp_path / "masks" / "a.png", np.array([[0, 300, 299], [1, 2, 3]], np.uint16))
    assert FolderDataset(tmp_path, num_classes=301, ignore_index=-1)[0]["mask"][0].tolist() == [
        0,
        300,
        299,
    ]


def test_size_mismatch_names_both_sizes(folder: Path) -> None:
    write(folder / "masks" / "b.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(ValueError, match=r"image .*b\.png' is 4x5 .*mask .*b\.png' is 5x4"):
        FolderDataset(folder)[1]


def test_rgb_mask_is_rejected(folder: Path) -> None:
    write(folder / "masks" / "a.png", rgb(4, 5))
    with pytest.raises(ValueError, match=r"mode 'RGB' \(3 channel.*class indices"):
        FolderDataset(folder)[0]


def test_duplicate_stems_and_bad_arguments(folder: Path) -> None:
    with pytest.raises(ValueError, match="ignore_index=1 is a real class"):
        FolderDataset(folder, num_classes=3, ignore_index=1)
    with pytest.raises(ValueError, match="num_classes"):
        FolderDataset(folder, num_classes=0)
    write(folder / "images" / "a.jpg", rgb(4, 5))
    with pytest.raises(ValueError, match=r"several suffixes.*'a'"):
        FolderDataset(folder)


def test_pickles_for_workers(folder: Path) -> None:
    ds = FolderDataset(folder, num_classes=3)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[1]["image"], ds[1]["image"])


def test_many_files_are_indexed_quickly_and_compactly(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    n = 1000
    for i in range(n):  # empty files: indexing never opens them
        (images / f"patch_{i:06d}.png").touch()
    t = time.perf_counter()
    ds = FolderDataset(tmp_path, labelled=False)
    elapsed = time.perf_counter() - t
    assert len(ds) == n and ds.stem(0) == "patch_000000" and ds.stem(n - 1) == f"patch_{n - 1:06d}"
    assert ds._names.nbytes == n * 16 + (n + 1) * 8  # 16-byte names + int64 offsets
    assert elapsed < 2.0  # ~0.01 s when idle; generous for a busy CI machine


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(st.characters(codec="utf-8"), max_size=12), max_size=30))
def test_packed_names_round_trip(names) -> None:
    packed = PackedNames(names)
    assert len(packed) == len(names)
    assert [packed[i] for i in range(len(names))] == names


@settings(max_examples=15, deadline=None)
@given(
    values=st.lists(st.integers(0, 255), min_size=6, max_size=6),
    num_classes=st.integers(1, 10),
)
def test_value_check_property(values, num_classes) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        write(root / "images" / "a.png", rgb(2, 3))
        write(root / "masks" / "a.png", np.array(values, np.uint8).reshape(2, 3))
        ds = FolderDataset(root, num_classes=num_classes)
        bad = {v for v in values if v >= num_classes and v != 255}
        if bad:
            with pytest.raises(ValueError, match=", ".join(str(v) for v in sorted(bad)[:10])):
                ds[0]
        else:
            assert ds[0]["mask"].flatten().tolist() == values
