"""The index cache of :class:`~s4seg.data.FolderDataset`: a folder's listing, packed, on disk.

Listing 370,000 files takes about a second on a local disk but can take minutes on a
network file system. The cache stores the index (image names and mask suffixes,
packed; an ``.npz`` without pickles) and a later construction loads it without
listing the folders, as long as every listed folder has the modification time it had
when it was listed (see :class:`~s4seg.data.FolderDataset` for what that detects).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CACHE_PREFIX",
    "FolderIndex",
    "PackedNames",
    "cache_file",
    "cache_key",
    "load_index",
    "save_index",
]

# The optional index cache (see FolderDataset, ``cache=``).
CACHE_FORMAT = 1  # bump when the file layout changes: older files are then rebuilt silently
CACHE_PREFIX = ".s4seg-index-"
# A folder modified less than this long before it was listed may change again within
# the same timestamp tick (1 s on ext3 and HFS+, 2 s on FAT, a few ms for Linux's
# coarse clock), leaving its mtime as recorded. Such a listing is never trusted: the
# next construction lists again (git's "racily clean" rule).
RACY_NS = 3_000_000_000
# What reading a damaged cache file raises (np.load, zipfile, zlib, json, the checks).
_UNREADABLE = (
    OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error,
)  # fmt: skip


class PackedNames:
    """Many strings in one UTF-8 buffer plus an int64 offset array.

    For 370k files this is ~9 bytes per name plus its length, with no Python
    object per name: forked DataLoader workers share the pages instead of
    copying them as reference counts change (a list of str would be copied).
    """

    def __init__(self, names: Sequence[str]) -> None:
        joined = "".join(names)
        blob = joined.encode("utf-8")
        if len(blob) == len(joined):  # all ASCII (the usual case): one byte per character
            lengths: Any = [len(n) for n in names]
        else:
            encoded = [n.encode("utf-8") for n in names]
            lengths = [len(e) for e in encoded]
        self._blob = blob
        self._offsets = np.zeros(len(names) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self._offsets[1:])

    @classmethod
    def from_buffers(cls, blob: bytes, offsets: np.ndarray) -> PackedNames:
        """Wrap an already packed blob and its ``len + 1`` int64 offsets (no copy)."""
        packed = cls.__new__(cls)
        packed._blob = blob
        packed._offsets = offsets
        return packed

    @property
    def blob(self) -> bytes:
        return self._blob

    @property
    def offsets(self) -> np.ndarray:
        return self._offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self._blob[self._offsets[i] : self._offsets[i + 1]].decode("utf-8")

    @property
    def nbytes(self) -> int:
        return len(self._blob) + self._offsets.nbytes


@dataclass(frozen=True, eq=False)
class FolderIndex:
    """A listed dataset: packed image names, and each image's mask suffix (labelled)."""

    names: PackedNames
    mask_suffixes: tuple[str, ...]
    mask_suffix_idx: np.ndarray


def cache_file(
    cache: str | os.PathLike[str] | bool | None,
    root: Path,
    image_dir: str,
    mask_dir: str,
    labelled: bool,
    extensions: tuple[str, ...],
    listed: Sequence[Path],
) -> Path | None:
    """The cache file that ``FolderDataset(cache=...)`` names (None: no cache)."""
    if cache is None or cache is False:
        return None
    suffixes = sorted({e.lower() for e in extensions})
    settings = [image_dir, mask_dir if labelled else None, labelled, suffixes]
    digest = hashlib.sha1(json.dumps(settings).encode("utf-8")).hexdigest()[:10]
    readable = re.sub(r"[^\w.-]+", "_", image_dir).strip("._") or "root"
    name = f"{CACHE_PREFIX}{readable}-{digest}.npz"
    if cache is True:
        path = root / name
    elif isinstance(cache, (str, os.PathLike)) and not isinstance(cache, bool):
        if not os.fspath(cache):
            raise ValueError(
                "cache='' is not a path; pass True (a file in the dataset root), a "
                "file or folder path, or None to list the folders every time"
            )
        path = Path(cache)
        if path.is_dir():
            path = path / name
    else:
        raise TypeError(
            f"cache must be None, a bool, or a file or folder path, got {cache!r} "
            f"({type(cache).__name__})"
        )
    if path.parent.resolve() in {f.resolve() for f in listed}:
        raise ValueError(
            f"index cache file {str(path)!r} would lie in a listed folder, and writing it "
            "would change that folder's mtime, so the cache would never be valid; pass "
            "cache=<a file or folder outside the image and mask folders>"
        )
    return path


def cache_key(
    folders: Sequence[Path], extensions: tuple[str, ...], labelled: bool
) -> dict[str, Any]:
    """What a cache file must have been written for: layout, folders, suffixes, labelled."""
    return {
        "format": CACHE_FORMAT,
        "folders": [os.path.abspath(f) for f in folders],
        "extensions": sorted({e.lower() for e in extensions}),
        "labelled": labelled,
    }


def _check_arrays(
    lengths: np.ndarray,
    blob: np.ndarray,
    suffix_idx: np.ndarray,
    suffixes: tuple[str, ...],
    count: int,
    labelled: bool,
) -> None:
    """Raise ValueError unless the arrays of a cache file form a consistent index."""
    if lengths.dtype != np.uint16 or lengths.shape != (count,) or count < 1:
        raise ValueError(f"name lengths {lengths.dtype} {lengths.shape} for {count} names")
    if blob.dtype != np.uint8 or blob.ndim != 1 or int(lengths.sum(dtype=np.int64)) != blob.size:
        raise ValueError(f"name buffer of {blob.size} bytes does not match the name lengths")
    if labelled and (
        suffix_idx.dtype != np.uint8
        or suffix_idx.shape != (count,)
        or not suffixes
        or (suffix_idx.size and int(suffix_idx.max()) >= len(suffixes))
    ):
        raise ValueError(f"mask suffix index {suffix_idx.shape} for {count} names, {suffixes}")


def load_index(
    path: Path, key: dict[str, Any], mtimes: list[int], labelled: bool
) -> FolderIndex | None:
    """The index in the cache file; None when it is absent, stale or unreadable (warned)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
                return None  # another layout (older s4seg): rebuilt silently
            if {k: meta.get(k) for k in key} != key or meta.get("mtimes_ns") != mtimes:
                return None
            listed_ns = int(meta["listed_ns"])
            if any(m + RACY_NS > listed_ns for m in mtimes):
                return None  # modified just before the listing: not trusted
            lengths = npz["lengths"]
            blob = npz["blob"]
            suffix_idx = npz["mask_suffix_idx"]
            suffixes = tuple(str(x) for x in meta["mask_suffixes"])
            count = int(meta["count"])
        _check_arrays(lengths, blob, suffix_idx, suffixes, count, labelled)
    except FileNotFoundError:
        return None
    except _UNREADABLE as err:
        warnings.warn(
            f"index cache {str(path)!r} is unreadable ({type(err).__name__}: "
            f"{err}); listing the folders and rewriting it",
            UserWarning,
            stacklevel=3,
        )
        return None
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    names = PackedNames.from_buffers(blob.tobytes(), offsets)
    idx = suffix_idx if labelled else np.zeros(0, dtype=np.uint8)
    return FolderIndex(names, suffixes, idx)


def save_index(
    path: Path, key: dict[str, Any], mtimes: list[int], listed_ns: int, index: FolderIndex
) -> None:
    """Write the cache file atomically; a failure is a warning (the dataset works without)."""
    meta = dict(key, mtimes_ns=mtimes, listed_ns=listed_ns, count=len(index.names))
    meta["mask_suffixes"] = list(index.mask_suffixes)
    # Written under a unique name, then renamed: ranks or jobs that build the same
    # index at once never see a half-written file. os.open applies the umask
    # (mkstemp would make the file private to this user).
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as fh:
                # A file object, so numpy appends no ".npz" to a user's file name.
                np.savez_compressed(
                    fh,
                    meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
                    # Name lengths fit uint16 (NAME_MAX: 255 bytes, or 255 UTF-16
                    # units on Windows, at most 765 bytes of UTF-8).
                    lengths=np.diff(index.names.offsets).astype(np.uint16),
                    blob=np.frombuffer(index.names.blob, dtype=np.uint8),
                    mask_suffix_idx=index.mask_suffix_idx,
                )
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as err:
        warnings.warn(
            f"could not write the index cache {str(path)!r} ({type(err).__name__}: {err}); "
            "the dataset works without it. Pass cache=<a writable file or folder> or "
            "cache=None",
            UserWarning,
            stacklevel=3,
        )
