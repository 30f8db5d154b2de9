"""FolderDataset: images in ``root/images``, class-index PNG masks in ``root/masks``."""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import os
import re
import secrets
import time
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["IMAGE_EXTENSIONS", "FolderDataset"]

# isinstance targets. Not numbers.Integral/Real: mypy does not see int/float as
# those ABCs and would flag the code after such a check as unreachable.
_INTEGER = (int, np.integer)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

# Image modes and how they become RGB. Anything else (16-bit, float, CMYK-like
# multi-band TIFFs, 2-channel data) is rejected with the mode in the message,
# because any silent conversion would guess at what the channels mean.
_TO_RGB_MODES = {"RGB", "L", "1", "P", "CMYK", "YCbCr", "RGBA", "LA", "PA", "RGBa", "La"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
# Mask modes whose pixel values are class indices as stored.
_MASK_MODES = {"L", "P", "1", "I", "I;16", "I;16L", "I;16B"}

_SHOW = 5  # how many offending file names an error lists

# The optional index cache (see FolderDataset, ``cache=``).
_CACHE_FORMAT = 1  # bump when the file layout changes: older files are then rebuilt silently
_CACHE_PREFIX = ".s4seg-index-"
# A folder modified less than this long before it was listed may change again within
# the same timestamp tick (1 s on ext3 and HFS+, 2 s on FAT, a few ms for Linux's
# coarse clock), leaving its mtime as recorded. Such a listing is never trusted: the
# next construction lists again (git's "racily clean" rule).
_RACY_NS = 3_000_000_000
# What reading a damaged cache file raises (np.load, zipfile, zlib, json, the checks).
_UNREADABLE = (
    OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error,
)  # fmt: skip


def _scan(folder: Path, extensions: Sequence[str]) -> list[str]:
    """Sorted names of the files in ``folder`` whose suffix is in ``extensions``.

    One ``os.scandir`` pass in a comprehension (no per-file ``stat`` on common
    file systems: ``is_file`` uses the directory entry's type). Hidden files
    (``.DS_Store``, editor swap files) are skipped; suffixes match ignoring case.
    """
    wanted = tuple(e.lower() for e in extensions)
    with os.scandir(folder) as it:
        names = [
            e.name
            for e in it
            if e.name.lower().endswith(wanted) and not e.name.startswith(".") and e.is_file()
        ]
    names.sort()
    return names


def _check_cache_arrays(
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


def _peek(folder: Path) -> list[str]:
    """A few names in ``folder``, for error hints."""
    with os.scandir(folder) as it:
        return sorted(itertools.islice((e.name for e in it), _SHOW))


def _listing(names: Sequence[str], total: int | None = None) -> str:
    total = len(names) if total is None else total
    shown = ", ".join(repr(n) for n in names[:_SHOW])
    more = f" and {total - _SHOW} more" if total > _SHOW else ""
    return f"{shown}{more}"


class _PackedNames:
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
    def from_buffers(cls, blob: bytes, offsets: np.ndarray) -> _PackedNames:
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


class FolderDataset(Dataset):
    """Images from ``root/image_dir`` and masks from ``root/mask_dir``, matched by stem.

    ``images/a.jpg`` pairs with ``masks/a.png``. Masks are single-channel PNGs
    whose pixel values are class indices (PIL mode ``L`` or ``P``; ``P`` is read
    as its indices, not its palette colours; 16-bit ``I;16`` works for more than
    256 classes). Each folder is listed once with ``os.scandir``; samples are in
    file-name order. Names are stored packed (about 8 bytes plus the name per
    file, no Python object per file), so construction scales to hundreds of
    thousands of files.

    Images become RGB float32 in [0, 1]:
      - ``RGB`` as is; ``L`` and ``1`` (grayscale) replicated to 3 channels;
        ``P``, ``CMYK`` and ``YCbCr`` converted to RGB by PIL;
      - ``RGBA`` / ``LA`` whose alpha is fully opaque: alpha dropped (nothing
        changes); with transparency: ``ValueError`` (transparent pixels have
        arbitrary colours, so dropping alpha would invent content);
      - any other mode (16-bit, float, 2-channel or multi-band TIFF): ``ValueError``.

    Checks, each with the file and the fix in the message: missing folders
    (``FileNotFoundError``, at construction); labelled images without a mask
    (``FileNotFoundError`` listing the first few and the count, at construction);
    image/mask size mismatch and mask values outside ``[0, num_classes)`` that are
    not ``ignore_index`` (``ValueError``, when the sample is loaded). Without
    ``num_classes`` mask values are not range-checked.

    Index cache (``cache=``, off by default). Listing 370,000 files takes about a
    second on a local disk but can take minutes on a network file system; the cache
    stores the index (names and mask suffixes, packed; an ``.npz`` without pickles)
    and a later construction loads it without listing the folders. It is used only
    when every listed folder (the image folder, and the mask folder when labelled)
    has the same modification time (``st_mtime_ns``) as when it was listed, and the
    same absolute path, file suffixes and ``labelled``. Otherwise the folders are
    listed again and the file is rewritten. An unreadable cache file is rebuilt with
    a warning; one that cannot be written gives a warning and the dataset works
    without it. Construction errors (missing masks, duplicate stems) are raised by
    the listing, so a cache file only ever holds the index of a folder that passed
    them. What it detects and what it cannot:

      - detected: files added, removed or renamed (each one updates the mtime of
        its folder); a folder replaced by another one (another mtime or path);
      - not needed: edits of a file's content (its name stays; contents are read
        when the sample is loaded, never cached);
      - detected as a change, to be safe: a folder modified less than 3 s before it
        was listed (within one timestamp tick of a coarse-clock file system the mtime
        could stay the same); it is listed again on the next construction;
      - not detected: tools that set a folder's mtime back to the exact recorded
        value (``touch -d``, ``tar``/``rsync -t`` over an existing folder with an
        identical timestamp), and file systems that do not update folder mtimes
        (some FUSE mounts of object stores). There, delete the cache file after
        changing the folder, or leave ``cache`` off.

    The file count is not compared: counting the entries is a listing, which is
    what the cache saves.

    Args:
        root: dataset folder.
        labelled: read masks; ``False`` for an unlabelled pool (no mask folder needed).
        num_classes: number of classes C, enables the mask value check.
        ignore_index: mask value that marks pixels without a label.
        image_dir: image sub-folder of ``root``.
        mask_dir: mask sub-folder of ``root``.
        extensions: image file suffixes to index (case-insensitive).
        cache: ``None`` or ``False`` (default): list the folders every time.
            ``True``: keep the index in ``root/.s4seg-index-<image_dir>-<hash>.npz``
            (the hash covers ``image_dir``, ``mask_dir``, ``labelled`` and the
            suffixes, so a labelled and an unlabelled view of one folder keep
            separate files). An existing folder: the same file name in that folder
            (for a read-only dataset). Any other path: that file. The file must lie
            outside the listed folders, whose mtime it would otherwise change.

    Attributes:
        cache_path: the index cache file (``None`` without a cache).
        cache_hit: ``True`` when the index came from the cache file, ``False`` when
            the folders were listed (``None`` without a cache).

    Returns (per item):
        ``{"image": float32 (3, H, W) in [0, 1], "mask": int64 (H, W)}``
        (no ``"mask"`` when ``labelled=False``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        labelled: bool = True,
        num_classes: int | None = None,
        ignore_index: int = 255,
        image_dir: str = "images",
        mask_dir: str = "masks",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        cache: str | os.PathLike[str] | bool | None = None,
    ) -> None:
        if num_classes is not None and (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, _INTEGER)
            or num_classes < 1
        ):
            raise ValueError(f"num_classes must be a positive int or None, got {num_classes!r}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, _INTEGER):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        if num_classes is not None and 0 <= ignore_index < num_classes:
            raise ValueError(
                f"ignore_index={ignore_index} is a real class for num_classes={num_classes}; "
                f"use a value outside [0, {num_classes}) such as 255"
            )
        if isinstance(extensions, str):
            extensions = (extensions,)
        # "png" and ".png" both mean the suffix ".png" (never "apng").
        extensions = tuple(e if e.startswith(".") else "." + e for e in extensions)
        self.root = Path(root)
        self.labelled = bool(labelled)
        self.num_classes: int | None = None if num_classes is None else int(num_classes)
        self.ignore_index: int = int(ignore_index)
        self.image_root = self.root / image_dir
        self.mask_root = self.root / mask_dir

        if not self.root.is_dir():
            raise FileNotFoundError(
                f"dataset root {str(self.root)!r} does not exist or is not a folder; expected "
                f"images in {str(self.image_root)!r}"
                + (f" and masks in {str(self.mask_root)!r}" if self.labelled else "")
            )
        if not self.image_root.is_dir():
            raise FileNotFoundError(
                f"image folder {str(self.image_root)!r} not found; put the images there or "
                f"pass image_dir= (the sub-folder of {str(self.root)!r} that holds them)"
            )
        self.cache_path: Path | None = self._cache_file(cache, image_dir, mask_dir, extensions)
        self.cache_hit: bool | None = None
        self._mask_suffixes: tuple[str, ...] = ()
        self._mask_suffix_idx = np.zeros(0, dtype=np.uint8)
        if self.cache_path is None:
            self._names = self._list(extensions)
            return
        folders = [self.image_root, self.mask_root] if self.labelled else [self.image_root]
        key = self._cache_key(folders, extensions)
        # The clock and the folders' mtimes are read before listing: a change made
        # during the listing then leaves an mtime unlike the one recorded.
        listed_ns = time.time_ns()
        try:
            mtimes = [os.stat(f).st_mtime_ns for f in folders]
        except OSError:  # e.g. no mask folder: the listing raises the helpful error
            self._names = self._list(extensions)
            return
        self.cache_hit = self._load_cache(self.cache_path, key, mtimes)
        if not self.cache_hit:
            self._names = self._list(extensions)
            self._save_cache(self.cache_path, key, mtimes, listed_ns)

    def _list(self, extensions: tuple[str, ...]) -> _PackedNames:
        """List the folders, check them, set the mask index; the packed image names."""
        names = _scan(self.image_root, extensions)
        if not names:
            other = _peek(self.image_root)
            hint = f"; it contains e.g. {_listing(other)}" if other else " (it is empty)"
            raise ValueError(
                f"no images with suffix {tuple(extensions)} in {str(self.image_root)!r}{hint}; "
                "add images or pass extensions="
            )
        stems = [n[: n.rindex(".")] for n in names]
        if len(set(stems)) != len(stems):
            dups = sorted(s for s, k in collections.Counter(stems).items() if k > 1)
            raise ValueError(
                f"{len(dups)} image stem(s) occur with several suffixes in "
                f"{str(self.image_root)!r}, e.g. {_listing(dups)}; images are matched to masks "
                "by stem, so keep one file per stem"
            )
        if self.labelled:
            self._index_masks(names, stems)
        return _PackedNames(names)

    # ----------------------------------------------------------------- index cache

    def _cache_file(
        self,
        cache: str | os.PathLike[str] | bool | None,
        image_dir: str,
        mask_dir: str,
        extensions: tuple[str, ...],
    ) -> Path | None:
        if cache is None or cache is False:
            return None
        suffixes = sorted({e.lower() for e in extensions})
        settings = [image_dir, mask_dir if self.labelled else None, self.labelled, suffixes]
        digest = hashlib.sha1(json.dumps(settings).encode("utf-8")).hexdigest()[:10]
        readable = re.sub(r"[^\w.-]+", "_", image_dir).strip("._") or "root"
        name = f"{_CACHE_PREFIX}{readable}-{digest}.npz"
        if cache is True:
            path = self.root / name
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
        listed = {self.image_root.resolve()}
        if self.labelled:
            listed.add(self.mask_root.resolve())
        if path.parent.resolve() in listed:
            raise ValueError(
                f"index cache file {str(path)!r} would lie in a listed folder, and writing it "
                "would change that folder's mtime, so the cache would never be valid; pass "
                "cache=<a file or folder outside the image and mask folders>"
            )
        return path

    def _cache_key(self, folders: list[Path], extensions: tuple[str, ...]) -> dict[str, Any]:
        return {
            "format": _CACHE_FORMAT,
            "folders": [os.path.abspath(f) for f in folders],
            "extensions": sorted({e.lower() for e in extensions}),
            "labelled": self.labelled,
        }

    def _load_cache(self, path: Path, key: dict[str, Any], mtimes: list[int]) -> bool:
        """Set the index from the cache file; ``False`` when it is absent or stale."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
                if not isinstance(meta, dict) or meta.get("format") != _CACHE_FORMAT:
                    return False  # another layout (older s4seg): rebuilt silently
                if {k: meta.get(k) for k in key} != key or meta.get("mtimes_ns") != mtimes:
                    return False
                listed_ns = int(meta["listed_ns"])
                if any(m + _RACY_NS > listed_ns for m in mtimes):
                    return False  # modified just before the listing: not trusted
                lengths = npz["lengths"]
                blob = npz["blob"]
                suffix_idx = npz["mask_suffix_idx"]
                suffixes = tuple(str(x) for x in meta["mask_suffixes"])
                count = int(meta["count"])
            _check_cache_arrays(lengths, blob, suffix_idx, suffixes, count, self.labelled)
        except FileNotFoundError:
            return False
        except _UNREADABLE as err:
            warnings.warn(
                f"index cache {str(path)!r} is unreadable ({type(err).__name__}: "
                f"{err}); listing the folders and rewriting it",
                UserWarning,
                stacklevel=3,
            )
            return False
        offsets = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        self._names = _PackedNames.from_buffers(blob.tobytes(), offsets)
        self._mask_suffixes = suffixes
        self._mask_suffix_idx = suffix_idx if self.labelled else np.zeros(0, dtype=np.uint8)
        return True

    def _save_cache(
        self, path: Path, key: dict[str, Any], mtimes: list[int], listed_ns: int
    ) -> None:
        meta = dict(key, mtimes_ns=mtimes, listed_ns=listed_ns, count=len(self._names))
        meta["mask_suffixes"] = list(self._mask_suffixes)
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
                        lengths=np.diff(self._names.offsets).astype(np.uint16),
                        blob=np.frombuffer(self._names.blob, dtype=np.uint8),
                        mask_suffix_idx=self._mask_suffix_idx,
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

    def _index_masks(self, names: list[str], stems: list[str]) -> None:
        if not self.mask_root.is_dir():
            raise FileNotFoundError(
                f"mask folder {str(self.mask_root)!r} not found; add class-index PNG masks "
                "there, pass mask_dir=, or pass labelled=False for an unlabelled folder"
            )
        masks = _scan(self.mask_root, (".png",))
        mask_suffix = {m[:-4]: m[-4:] for m in masks}  # stem -> ".png" (as cased on disk)
        missing = [n for n, s in zip(names, stems, strict=True) if s not in mask_suffix]
        if missing:
            first = [str(self.image_root / name) for name in missing[:_SHOW]]
            hint = ""
            non_png = _scan(self.mask_root, (".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"))
            missing_stems = {n[: n.rindex(".")] for n in missing}
            if any(n[: n.rindex(".")] in missing_stems for n in non_png):
                hint = (
                    " Some masks exist but are not PNG; masks must be lossless PNGs of class "
                    "indices (JPEG compression changes the values)."
                )
            elif masks:
                hint = (
                    f" Masks are matched by file stem (images/a.jpg -> masks/a.png); the mask "
                    f"folder has e.g. {_listing(masks, len(masks))}."
                )
            raise FileNotFoundError(
                f"{len(missing)} of {len(names)} labelled images have no mask "
                f"{str(self.mask_root)!r}/<stem>.png: {_listing(first, len(missing))}.{hint} "
                "Add the masks, remove those images, or pass labelled=False."
            )
        suffixes = sorted(set(mask_suffix.values()))
        if len(suffixes) == 1:  # the usual case: every mask is "<stem>.png"
            self._mask_suffix_idx = np.zeros(len(names), dtype=np.uint8)
        else:
            idx = {e: i for i, e in enumerate(suffixes)}
            self._mask_suffix_idx = np.array([idx[mask_suffix[s]] for s in stems], dtype=np.uint8)
        self._mask_suffixes = tuple(suffixes)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return (
            f"FolderDataset({str(self.root)!r}, labelled={self.labelled}, "
            f"num_classes={self.num_classes}, {len(self)} images)"
        )

    def _index(self, index: int) -> int:
        i = int(index)
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {n} images")
        return i

    def stem(self, index: int) -> str:
        """File stem of sample ``index``."""
        name = self._names[self._index(index)]
        return name[: name.rindex(".")]

    def image_path(self, index: int) -> Path:
        return self.image_root / self._names[self._index(index)]

    def mask_path(self, index: int) -> Path:
        if not self.labelled:
            raise ValueError("this FolderDataset is unlabelled (labelled=False); it has no masks")
        i = self._index(index)
        return self.mask_root / (self.stem(i) + self._mask_suffixes[self._mask_suffix_idx[i]])

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        image_path = self.image_path(index)
        image = _read_image(image_path)
        out = {"image": torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)}
        if self.labelled:
            mask_path = self.mask_path(index)
            # int64 before any comparison: uint8 masks vs ignore_index=-1 or C > 255.
            mask = _read_mask(mask_path).astype(np.int64)
            if mask.shape != image.shape[:2]:
                raise ValueError(
                    f"size mismatch: image {str(image_path)!r} is {image.shape[0]}x{image.shape[1]} "
                    f"(HxW) but mask {str(mask_path)!r} is {mask.shape[0]}x{mask.shape[1]}; "
                    "masks must have the image's size (resize with nearest-neighbour, or fix the pairing)"
                )
            self._check_values(mask, mask_path)
            out["mask"] = torch.from_numpy(mask)
        return out

    def _check_values(self, mask: np.ndarray, path: Path) -> None:
        bad = mask < 0
        if self.num_classes is not None:
            bad |= mask >= self.num_classes
        bad &= mask != self.ignore_index
        if bad.any():
            values = np.unique(mask[bad])
            shown = ", ".join(str(v) for v in values[:10].tolist())
            more = f" (and {len(values) - 10} more)" if len(values) > 10 else ""
            classes = (
                f"[0, {self.num_classes})"
                if self.num_classes is not None
                else "non-negative values"
            )
            raise ValueError(
                f"mask {str(path)!r} has value(s) {shown}{more} outside the classes {classes} "
                f"and not ignore_index={self.ignore_index} ({int(bad.sum())} pixels); "
                "set num_classes to the real number of classes, or map those values to "
                f"{self.ignore_index} (e.g. a 0/255 binary mask needs 255 -> 1)"
            )


def _read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, see FolderDataset for the mode rules."""
    with Image.open(path) as im:
        mode = im.mode
        if mode not in _TO_RGB_MODES:
            bands = len(im.getbands())
            raise ValueError(
                f"image {str(path)!r} has PIL mode {mode!r} ({bands} channel(s)); supported are "
                "8-bit RGB, grayscale (L, replicated to 3 channels), palette (P) and opaque "
                "RGBA; convert it to 8-bit RGB first, e.g. "
                "Image.open(p).convert('RGB').save(p) after rescaling"
            )
        if mode in _ALPHA_MODES:
            alpha = np.asarray(im.getchannel("A"))
            if (alpha != 255).any():
                frac = float((alpha != 255).mean())
                raise ValueError(
                    f"image {str(path)!r} is {mode} with transparency ({frac:.1%} of pixels not "
                    "opaque); the colour under transparent pixels is arbitrary, so alpha is not "
                    "dropped silently. Composite it onto a background and save as RGB, e.g. "
                    "Image.alpha_composite(Image.new('RGBA', im.size, 'black'), im).convert('RGB')"
                )
        rgb = im if mode == "RGB" else im.convert("RGB")
        # np.array (a writable copy): torch warns on read-only buffers.
        return np.array(rgb, dtype=np.uint8)


def _read_mask(path: Path) -> np.ndarray:
    """(H, W) integer class indices."""
    with Image.open(path) as im:
        if im.mode not in _MASK_MODES:
            raise ValueError(
                f"mask {str(path)!r} has PIL mode {im.mode!r} ({len(im.getbands())} channel(s)); "
                "masks must be single-channel PNGs of class indices (mode L or P). A colour-coded "
                "RGB mask needs its colours mapped to indices first (one index per class colour)"
            )
        return np.asarray(im)
