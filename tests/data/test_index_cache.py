"""FolderDataset's optional index cache (``cache=``): hits, invalidation, damaged files.

Files made in a test are seconds old, and a folder modified less than 3 s before it is
listed is never trusted (see ``RACY_NS``). ``age`` sets the folders' mtimes a minute
back, as for a dataset that has been sitting on disk; a test that changes a folder
after that ages it again before it expects a hit.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import s4seg.data.folder as folder_module
import s4seg.data.index_cache as index_cache
from s4seg.data import FolderDataset
from s4seg.data.index_cache import RACY_NS, PackedNames


def write_image(path: Path, seed: int, size: tuple[int, int] = (3, 4)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def write_mask(path: Path, value: int, size: tuple[int, int] = (3, 4)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)


def age(*folders: Path, seconds: float = 60.0) -> int:
    """Set the folders' mtimes ``seconds`` into the past; return that mtime in ns."""
    ns = time.time_ns() - int(seconds * 1e9)
    for f in folders:
        os.utime(f, ns=(ns, ns))
    return ns


def contents(ds: FolderDataset) -> list[tuple[str, Path, Path | None]]:
    return [
        (ds.stem(i), ds.image_path(i), ds.mask_path(i) if ds.labelled else None)
        for i in range(len(ds))
    ]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for i, stem in enumerate(["c", "a", "b"]):
        write_image(tmp_path / "images" / f"{stem}.png", seed=i)
        write_mask(tmp_path / "masks" / f"{stem}.png", value=i)
    age(tmp_path / "images", tmp_path / "masks")
    return tmp_path


def fail_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any listing of a folder an error, to prove a hit does not list."""

    def boom(*args, **kwargs):
        raise AssertionError("the folder was listed")

    monkeypatch.setattr(folder_module, "_scan", boom)


def test_second_construction_hits_without_listing(root: Path, monkeypatch) -> None:
    cold = FolderDataset(root, num_classes=3, cache=True)
    assert cold.cache_hit is False
    assert cold.cache_path is not None and cold.cache_path.parent == root
    assert cold.cache_path.name.startswith(".s4seg-index-images-")
    assert cold.cache_path.suffix == ".npz" and cold.cache_path.is_file()

    fail_listing(monkeypatch)
    warm = FolderDataset(root, num_classes=3, cache=True)
    assert warm.cache_hit is True
    assert contents(warm) == contents(cold)
    assert [warm.stem(i) for i in range(3)] == ["a", "b", "c"]
    for i in range(3):
        assert torch.equal(warm[i]["image"], cold[i]["image"])
        assert warm[i]["mask"].unique().tolist() == [[1, 2, 0][i]]  # a=1, b=2, c=0
    assert warm._names.nbytes == cold._names.nbytes
    # Workers get a pickled copy: the packed index travels with it.
    clone = pickle.loads(pickle.dumps(warm))
    assert contents(clone) == contents(warm)


def test_without_cache_nothing_is_written_and_attributes_say_so(root: Path) -> None:
    ds = FolderDataset(root, cache=None)
    assert ds.cache_path is None and ds.cache_hit is None
    assert FolderDataset(root, cache=False).cache_path is None
    assert not any(p.name.startswith(".s4seg-index") for p in root.iterdir())


def test_file_format_hand_checked(tmp_path: Path) -> None:
    """Names "a.png", "bé.png" (é is 2 bytes of UTF-8): lengths 5 and 7, 12 bytes in all."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").touch()
    (tmp_path / "images" / "bé.png").touch()
    mtime = age(tmp_path / "images")
    ds = FolderDataset(tmp_path, labelled=False, cache=True)
    assert ds.cache_path is not None
    with np.load(ds.cache_path, allow_pickle=False) as npz:
        assert npz["lengths"].tolist() == [5, 7] and npz["lengths"].dtype == np.uint16
        assert npz["blob"].tobytes() == "a.pngbé.png".encode()
        meta = json.loads(npz["meta"].tobytes())
    assert meta["count"] == 2 and meta["mtimes_ns"] == [mtime] and meta["labelled"] is False
    assert meta["folders"] == [os.path.abspath(tmp_path / "images")]
    assert meta["listed_ns"] >= mtime + RACY_NS
    warm = FolderDataset(tmp_path, labelled=False, cache=True)
    assert warm.cache_hit and warm.stem(1) == "bé"


@pytest.mark.parametrize("change", ["add", "remove", "rename"])
def test_changed_image_folder_is_listed_again(root: Path, change: str) -> None:
    FolderDataset(root, cache=True)
    images, masks = root / "images", root / "masks"
    if change == "add":
        write_image(images / "d.png", seed=9)
        write_mask(masks / "d.png", value=1)
        expected = ["a", "b", "c", "d"]
    elif change == "remove":
        (images / "b.png").unlink()
        expected = ["a", "c"]
    else:
        (images / "c.png").rename(images / "e.png")
        (masks / "c.png").rename(masks / "e.png")
        expected = ["a", "b", "e"]
    ds = FolderDataset(root, cache=True)
    assert ds.cache_hit is False
    assert [ds.stem(i) for i in range(len(ds))] == expected
    # The rewritten file holds the new index.
    age(images, masks)  # another mtime again: listed and written once more
    ds = FolderDataset(root, cache=True)
    again = FolderDataset(root, cache=True)
    assert again.cache_hit is True and contents(again) == contents(ds)


def test_removed_mask_still_raises_the_missing_mask_error(root: Path) -> None:
    FolderDataset(root, cache=True)
    (root / "masks" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match="1 of 3 labelled images have no mask"):
        FolderDataset(root, cache=True)


def test_missing_mask_folder_still_raises_the_helpful_error(root: Path) -> None:
    FolderDataset(root, cache=True)
    (root / "masks").rename(root / "labels")
    with pytest.raises(FileNotFoundError, match=r"mask folder .*labelled=False"):
        FolderDataset(root, cache=True)


def test_folder_modified_just_before_listing_is_not_trusted(root: Path) -> None:
    images, masks = root / "images", root / "masks"
    age(images, masks, seconds=RACY_NS / 1e9 / 3)  # 1 s ago: inside the window
    FolderDataset(root, cache=True)
    assert FolderDataset(root, cache=True).cache_hit is False
    age(images, masks)
    FolderDataset(root, cache=True)  # the folders were listed a minute after their mtime
    assert FolderDataset(root, cache=True).cache_hit is True


def test_mtime_off_by_one_ns_is_a_change_but_put_back_exactly_is_not(tmp_path: Path) -> None:
    """Only the exact recorded mtime counts as unchanged; setting it back is a documented
    blind spot (tar or rsync -t over an existing folder)."""
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").touch()
    (images / "b.png").touch()
    mtime = age(images)
    FolderDataset(tmp_path, labelled=False, cache=True)
    (images / "a.png").rename(images / "z.png")
    os.utime(images, ns=(mtime + 1, mtime + 1))
    ds = FolderDataset(tmp_path, labelled=False, cache=True)
    assert ds.cache_hit is False and [ds.stem(0), ds.stem(1)] == ["b", "z"]
    (images / "z.png").rename(images / "a.png")
    os.utime(images, ns=(mtime + 1, mtime + 1))  # the mtime recorded for the b/z listing
    stale = FolderDataset(tmp_path, labelled=False, cache=True)
    assert stale.cache_hit is True and stale.stem(1) == "z"


def test_labelled_and_unlabelled_views_keep_separate_files(root: Path) -> None:
    labelled = FolderDataset(root, cache=True)
    unlabelled = FolderDataset(root, labelled=False, cache=True)
    pngs_only = FolderDataset(root, labelled=False, cache=True, extensions=("png",))
    paths = {labelled.cache_path, unlabelled.cache_path, pngs_only.cache_path}
    assert len(paths) == 3
    for kwargs in ({}, {"labelled": False}, {"labelled": False, "extensions": ("png",)}):
        assert FolderDataset(root, cache=True, **kwargs).cache_hit is True
    # Suffix order and case do not change the file.
    same = FolderDataset(root, labelled=False, cache=True, extensions=(".PNG",))
    assert same.cache_path == pngs_only.cache_path and same.cache_hit is True


def test_shared_file_never_serves_another_folder(tmp_path: Path) -> None:
    """Two datasets unpacked with identical folder mtimes (a reproducible tarball) and one
    explicit cache file: the absolute path tells them apart."""
    roots = []
    for k, stems in enumerate((["a", "b"], ["x", "y", "z"])):
        r = tmp_path / f"set{k}"
        for s in stems:
            (r / "images").mkdir(parents=True, exist_ok=True)
            (r / "images" / f"{s}.png").touch()
        roots.append(r)
    ns = age(*(r / "images" for r in roots))
    for r in roots:
        os.utime(r / "images", ns=(ns, ns))
    cache = tmp_path / "shared.idx"
    first = FolderDataset(roots[0], labelled=False, cache=cache)
    second = FolderDataset(roots[1], labelled=False, cache=cache)
    assert second.cache_hit is False and len(second) == 3 and len(first) == 2
    assert cache.is_file() and not (tmp_path / "shared.idx.npz").exists()


def test_cache_in_another_folder_and_read_only_dataset(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "caches"
    elsewhere.mkdir()
    ds = FolderDataset(root, cache=elsewhere)
    assert ds.cache_path is not None and ds.cache_path.parent == elsewhere
    assert FolderDataset(root, cache=str(elsewhere)).cache_hit is True


def test_unwritable_cache_warns_and_the_dataset_works(root: Path) -> None:
    target = root / "no" / "such" / "folder" / "index.npz"
    with pytest.warns(UserWarning, match=r"could not write the index cache .*works without it"):
        ds = FolderDataset(root, cache=target)
    assert len(ds) == 3 and ds.cache_hit is False
    assert not list((root).glob("**/*.tmp"))


def test_cache_inside_a_listed_folder_is_refused(root: Path) -> None:
    with pytest.raises(ValueError, match=r"listed folder.*outside the image and mask"):
        FolderDataset(root, cache=root / "images" / "index.npz")
    with pytest.raises(ValueError, match=r"listed folder"):
        FolderDataset(root, cache=root / "masks")  # a folder: the file would go inside
    with pytest.raises(ValueError, match=r"listed folder"):  # images in the root itself
        FolderDataset(root / "images", image_dir=".", labelled=False, cache=True)
    # Unlabelled: the mask folder is not listed, so it may hold the file.
    assert FolderDataset(root, labelled=False, cache=root / "masks").cache_hit is False


@pytest.mark.parametrize("bad", [1, 0.5, ["x"], b"path"])
def test_bad_cache_argument_type(root: Path, bad) -> None:
    with pytest.raises(TypeError, match="cache must be None, a bool, or a file or folder path"):
        FolderDataset(root, cache=bad)


def test_empty_cache_path(root: Path) -> None:
    with pytest.raises(ValueError, match=r"cache='' is not a path"):
        FolderDataset(root, cache="")


def damage_garbage(path: Path) -> None:
    path.write_bytes(b"not a zip file at all")


def damage_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def damage_flip(path: Path) -> None:
    """One byte flipped in the middle of the compressed name buffer (not in a zip header
    field such as a timestamp, which no reader checks)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("blob.npy")
    data = bytearray(path.read_bytes())
    name_len, extra_len = np.frombuffer(data, "<u2", 2, info.header_offset + 26)
    start = info.header_offset + 30 + int(name_len) + int(extra_len)  # local header: 30 B
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def damage_lengths(path: Path) -> None:
    """A well-formed npz whose name lengths do not add up to the buffer."""
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["lengths"] = arrays["lengths"] + 1
    with path.open("wb") as fh:
        np.savez(fh, **arrays)


def damage_meta(path: Path) -> None:
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["meta"] = np.frombuffer(b"{not json", dtype=np.uint8)
    with path.open("wb") as fh:
        np.savez(fh, **arrays)


def damage_pickle(path: Path) -> None:
    """An object array needs pickle to load; the cache never unpickles."""
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["blob"] = np.array([{"x": 1}], dtype=object)
    with path.open("wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize(
    "damage",
    [damage_garbage, damage_truncate, damage_flip, damage_lengths, damage_meta, damage_pickle],
)
def test_damaged_cache_is_rebuilt_with_a_warning(root: Path, damage) -> None:
    reference = FolderDataset(root)
    cold = FolderDataset(root, cache=True)
    assert cold.cache_path is not None
    damage(cold.cache_path)
    with pytest.warns(UserWarning, match=r"index cache .* is unreadable .*rewriting it") as rec:
        rebuilt = FolderDataset(root, cache=True)
    assert rec[0].filename == __file__  # the warning points at the caller's line
    assert rebuilt.cache_hit is False and contents(rebuilt) == contents(reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FolderDataset(root, cache=True).cache_hit is True  # rewritten and valid


def test_other_format_version_is_rebuilt_silently(root: Path, monkeypatch) -> None:
    FolderDataset(root, cache=True)
    monkeypatch.setattr(index_cache, "CACHE_FORMAT", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FolderDataset(root, cache=True).cache_hit is False
        assert FolderDataset(root, cache=True).cache_hit is True


def test_cache_file_is_a_zip_of_plain_arrays(root: Path) -> None:
    ds = FolderDataset(root, cache=True)
    assert ds.cache_path is not None
    with zipfile.ZipFile(ds.cache_path) as zf:
        assert sorted(zf.namelist()) == [
            "blob.npy",
            "lengths.npy",
            "mask_suffix_idx.npy",
            "meta.npy",
        ]


def test_packed_names_ascii_and_unicode_paths_agree() -> None:
    for names in (["a.png", "bb.png"], ["a.png", "bé.png", "日本.png"], []):
        packed = PackedNames(names)
        assert [packed[i] for i in range(len(names))] == names
        lengths = [len(n.encode()) for n in names]
        assert packed.offsets.tolist() == np.concatenate([[0], np.cumsum(lengths)]).tolist()
        again = PackedNames.from_buffers(packed.blob, packed.offsets)
        assert [again[i] for i in range(len(names))] == names


# Names as they occur in the wild: unicode, spaces, mixed-case suffixes, hidden files,
# files the dataset ignores.
NAME = st.text(
    st.characters(codec="utf-8", exclude_characters='/\\\0:*?"<>|', exclude_categories=["Cs"]),
    min_size=1,
    max_size=10,
)
SUFFIX = st.sampled_from([".png", ".PNG", ".jpg", ".txt", ""])


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(NAME, SUFFIX), min_size=1, max_size=12), st.booleans())
def test_same_index_with_and_without_cache(files, labelled) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        images, masks = root / "images", root / "masks"
        images.mkdir()
        masks.mkdir()
        for stem, suffix in files:
            try:
                (images / f"{stem}{suffix}").touch()
                (masks / f"{stem}.png").touch()
            except OSError:  # a name this file system refuses (e.g. too long in bytes)
                continue
        age(images, masks)
        try:
            plain = FolderDataset(root, labelled=labelled)
        except (ValueError, FileNotFoundError) as err:
            # The cached construction raises the same error (it lists the folders too),
            # and writes no cache file.
            with pytest.raises(type(err), match=re.escape(str(err))):
                FolderDataset(root, labelled=labelled, cache=True)
            assert not list(root.glob(".s4seg-index-*"))
            return
        cold = FolderDataset(root, labelled=labelled, cache=True)
        warm = FolderDataset(root, labelled=labelled, cache=True)
        assert cold.cache_hit is False and warm.cache_hit is True
        assert contents(plain) == contents(cold) == contents(warm)
