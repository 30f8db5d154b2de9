"""FolderDataset: images in ``root/images``, class-index PNG masks in ``root/masks``."""

from __future__ import annotations

import collections
import itertools
import os
import struct
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from s4seg.data.index_cache import (
    FolderIndex,
    PackedNames,
    cache_file,
    cache_key,
    load_index,
    save_index,
)

__all__ = ["IMAGE_EXTENSIONS", "DatasetProblems", "FolderDataset"]

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


def _scan(folder: Path, extensions: Sequence[str]) -> list[str]:
    """Sorted names of the files in ``folder`` whose suffix is in ``extensions``.

    One ``os.scandir`` pass (no per-file ``stat`` on common file systems: ``is_file``
    uses the directory entry's type; only symbolic links are followed). Hidden files
    (``.DS_Store``, editor swap files) are skipped; suffixes match ignoring case. A
    matching name that is a symbolic link to nothing raises, listing the broken links,
    instead of vanishing from the dataset.
    """
    wanted = tuple(e.lower() for e in extensions)
    names, broken = [], []
    with os.scandir(folder) as it:
        for e in it:
            if not e.name.lower().endswith(wanted) or e.name.startswith("."):
                continue
            if e.is_file():
                names.append(e.name)
            elif e.is_symlink() and not os.path.exists(e.path):
                broken.append(e.name)
    if broken:
        broken.sort()
        shown = ", ".join(f"{n!r} -> {os.readlink(folder / n)!r}" for n in broken[:_SHOW])
        more = f" and {len(broken) - _SHOW} more" if len(broken) > _SHOW else ""
        raise FileNotFoundError(
            f"{len(broken)} file(s) in {str(folder)!r} are symbolic links to files that do "
            f"not exist: {shown}{more}; restore their targets (a moved or unmounted "
            "folder?) or remove the links"
        )
    names.sort()
    return names


def _peek(folder: Path) -> list[str]:
    """A few names in ``folder``, for error hints."""
    with os.scandir(folder) as it:
        return sorted(itertools.islice((e.name for e in it), _SHOW))


def _listing(names: Sequence[str], total: int | None = None) -> str:
    total = len(names) if total is None else total
    shown = ", ".join(repr(n) for n in names[:_SHOW])
    more = f" and {total - _SHOW} more" if total > _SHOW else ""
    return f"{shown}{more}"


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
        folders = [self.image_root, self.mask_root] if self.labelled else [self.image_root]
        self.cache_path: Path | None = cache_file(
            cache, self.root, image_dir, mask_dir, self.labelled, extensions, folders
        )
        self.cache_hit: bool | None = None
        self._mask_suffixes: tuple[str, ...] = ()
        self._mask_suffix_idx = np.zeros(0, dtype=np.uint8)
        if self.cache_path is None:
            self._names = self._list(extensions)
            return
        key = cache_key(folders, extensions, self.labelled)
        # The clock and the folders' mtimes are read before listing: a change made
        # during the listing then leaves an mtime unlike the one recorded.
        listed_ns = time.time_ns()
        try:
            mtimes = [os.stat(f).st_mtime_ns for f in folders]
        except OSError:  # e.g. no mask folder: the listing raises the helpful error
            self._names = self._list(extensions)
            return
        index = load_index(self.cache_path, key, mtimes, self.labelled)
        self.cache_hit = index is not None
        if index is not None:
            self._names = index.names
            self._mask_suffixes, self._mask_suffix_idx = index.mask_suffixes, index.mask_suffix_idx
        else:
            self._names = self._list(extensions)
            index = FolderIndex(self._names, self._mask_suffixes, self._mask_suffix_idx)
            save_index(self.cache_path, key, mtimes, listed_ns, index)

    def _list(self, extensions: tuple[str, ...]) -> PackedNames:
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
        return PackedNames(names)

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

    def verify(
        self, *, full: bool = False, workers: int | None = None, progress: bool = True
    ) -> int:
        """Check every file before a long run; raise listing every bad one at once.

        Files are otherwise read when a sample is first drawn, so a bad one would stop
        a run at that step (possibly thousands of steps in). The fast pass reads each
        file's header and last bytes, not its pixels: a missing or empty file, one
        Pillow cannot identify, an unsupported image mode, a PNG or JPEG cut short
        (no end chunk / end marker), a mask that is not a PNG (JPEG bytes under a
        ``.png`` name) or not single-channel, and a mask whose size is not its
        image's. ``full=True`` also decodes every file, which finds corrupt data
        inside a whole file, transparent pixels, and mask values outside the classes.

        Args:
            full: decode every image and mask too (about the cost of one epoch of
                loading, without augmentation).
            workers: threads reading files (default: ``min(32, CPUs + 4)``; more help
                on a network file system).
            progress: show a progress bar.

        Returns:
            The number of samples checked (all good).

        Raises:
            DatasetProblems: a ``ValueError`` whose message lists the bad files with
                what is wrong (the first 20), and whose ``problems`` holds them all.
        """
        from tqdm.auto import tqdm

        n = len(self)
        chunk = 64
        problems: list[tuple[str, str]] = []
        with (
            ThreadPoolExecutor(max_workers=workers) as pool,
            tqdm(total=n, desc="verify", unit="sample", disable=not progress) as bar,
        ):
            futures = {
                pool.submit(self._verify_range, start, min(start + chunk, n), full): start
                for start in range(0, n, chunk)
            }
            for future in as_completed(futures):
                problems.extend(future.result())
                bar.update(min(chunk, n - futures[future]))
        if problems:
            problems.sort()
            raise DatasetProblems(str(self.root), n, problems)
        return n

    def _verify_range(self, start: int, stop: int, full: bool) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for i in range(start, stop):
            image_path = self.image_path(i)
            image = _check_header(image_path, "image", found)
            mask = None
            if self.labelled:
                mask = _check_header(self.mask_path(i), "mask", found)
            if image is not None and mask is not None and image[2] != mask[2]:
                (w, h), (mw, mh) = image[2], mask[2]
                found.append(
                    (
                        str(self.mask_path(i)),
                        f"mask is {mh}x{mw} (HxW) but its image is {h}x{w}; masks must have "
                        "the image's size",
                    )
                )
            if not full or image is None or (self.labelled and mask is None):
                continue
            try:
                self[i]
            except (OSError, ValueError) as err:
                text = str(err)
                mask_path = str(self.mask_path(i)) if self.labelled else None
                culprit = mask_path if mask_path and mask_path in text else str(image_path)
                found.append((culprit, text))
        return found

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


class DatasetProblems(ValueError):
    """Bad files found by :meth:`FolderDataset.verify`, all of them.

    Attributes:
        problems: ``(path, what is wrong)`` for every bad file, sorted by path.
    """

    def __init__(self, root: str, checked: int, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {path}: {what}" for path, what in problems[:20])
        more = (
            f"\n  ... and {len(problems) - 20} more (see .problems)" if len(problems) > 20 else ""
        )
        super().__init__(
            f"{len(problems)} problem(s) in the {checked} samples of {root!r}:\n{shown}{more}\n"
            "Fix or remove those files (and their masks or images) before training"
        )


# The end of a whole PNG (its IEND chunk) and of a whole JPEG (the EOI marker); a file
# cut short lacks them. Looked for in the last bytes only (data may follow them).
_ENDINGS = {
    "PNG": (b"IEND", "no PNG end chunk (IEND)"),
    "JPEG": (b"\xff\xd9", "no JPEG end marker"),
}
_TAIL = 256


def _check_header(
    path: Path, kind: str, found: list[tuple[str, str]]
) -> tuple[str, str, tuple[int, int]] | None:
    """(format, mode, (W, H)) of a file from its header and tail; None (and a problem
    appended to ``found``) if it is bad."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        broken = " (a symbolic link to nothing)" if os.path.islink(path) else ""
        found.append((str(path), f"{kind} file missing{broken}"))
        return None
    except OSError as err:
        found.append((str(path), f"cannot stat the {kind}: {err}"))
        return None
    if size == 0:
        found.append((str(path), f"empty {kind} file (0 bytes)"))
        return None
    try:
        with Image.open(path) as im:
            fmt, mode, wh = im.format, im.mode, im.size
        with open(path, "rb") as f:
            f.seek(max(0, size - _TAIL))
            tail = f.read()
    except _DECODE_ERRORS as err:
        found.append((str(path), f"not a readable {kind}: {type(err).__name__}: {err}"))
        return None
    ending = _ENDINGS.get(fmt or "")
    if ending is not None and ending[0] not in tail:
        # Cut short, or followed by more bytes than the tail holds: decoding tells.
        try:
            with Image.open(path) as im:
                im.load()
        except _DECODE_ERRORS as err:
            found.append((str(path), f"truncated {fmt} {kind} ({size} bytes, {ending[1]}): {err}"))
            return None
    if kind == "mask":
        if fmt != "PNG":
            found.append((str(path), str(_mask_format_error(path, fmt))))
            return None
        if mode not in _MASK_MODES:
            found.append(
                (str(path), f"mask has PIL mode {mode!r}; masks are single-channel (L or P)")
            )
            return None
    elif mode not in _TO_RGB_MODES:
        found.append(
            (
                str(path),
                f"image has PIL mode {mode!r}, which is not supported (8-bit RGB, L, P, RGBA)",
            )
        )
        return None
    return fmt or "", mode, wh


# What Pillow raises on a file it cannot parse or decode: UnidentifiedImageError and
# "image file is truncated" (OSError), "broken PNG file" (SyntaxError), bad headers
# (ValueError, struct.error), decompression bombs.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)


def _cannot_read(kind: str, path: Path, err: BaseException) -> OSError:
    detail = str(err) or type(err).__name__
    if isinstance(err, FileNotFoundError):
        return FileNotFoundError(f"{kind} {str(path)!r} not found ({detail})")
    return OSError(
        f"cannot read {kind} {str(path)!r}: {type(err).__name__}: {detail} (a truncated or "
        "corrupt file? FolderDataset.verify() lists every bad file at once)"
    )


def _read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, see FolderDataset for the mode rules."""
    try:
        im = Image.open(path)
    except _DECODE_ERRORS as err:
        raise _cannot_read("image", path, err) from err
    with im:
        mode = im.mode
        if mode not in _TO_RGB_MODES:
            bands = len(im.getbands())
            raise ValueError(
                f"image {str(path)!r} has PIL mode {mode!r} ({bands} channel(s)); supported are "
                "8-bit RGB, grayscale (L, replicated to 3 channels), palette (P) and opaque "
                "RGBA; convert it to 8-bit RGB first, e.g. "
                "Image.open(p).convert('RGB').save(p) after rescaling"
            )
        try:
            im.load()
            alpha = np.asarray(im.getchannel("A")) if mode in _ALPHA_MODES else None
            rgb = im if mode == "RGB" else im.convert("RGB")
            # np.array (a writable copy): torch warns on read-only buffers.
            array = np.array(rgb, dtype=np.uint8)
        except _DECODE_ERRORS as err:
            raise _cannot_read("image", path, err) from err
    if alpha is not None and (alpha != 255).any():
        frac = float((alpha != 255).mean())
        raise ValueError(
            f"image {str(path)!r} is {mode} with transparency ({frac:.1%} of pixels not "
            "opaque); the colour under transparent pixels is arbitrary, so alpha is not "
            "dropped silently. Composite it onto a background and save as RGB, e.g. "
            "Image.alpha_composite(Image.new('RGBA', im.size, 'black'), im).convert('RGB')"
        )
    return array


def _mask_format_error(path: Path, fmt: str | None) -> ValueError:
    return ValueError(
        f"mask {str(path)!r} is a {fmt or 'non-PNG'} file, not a PNG, under a .png name: "
        "lossy compression (JPEG) changes the class indices of pixels near edges. "
        "Re-export the masks as PNG from the original label maps"
    )


def _read_mask(path: Path) -> np.ndarray:
    """(H, W) integer class indices."""
    try:
        im = Image.open(path)
    except _DECODE_ERRORS as err:
        raise _cannot_read("mask", path, err) from err
    with im:
        if im.format != "PNG":
            raise _mask_format_error(path, im.format)
        if im.mode not in _MASK_MODES:
            raise ValueError(
                f"mask {str(path)!r} has PIL mode {im.mode!r} ({len(im.getbands())} channel(s)); "
                "masks must be single-channel PNGs of class indices (mode L or P). A colour-coded "
                "RGB mask needs its colours mapped to indices first (one index per class colour)"
            )
        try:
            return np.asarray(im)
        except _DECODE_ERRORS as err:
            raise _cannot_read("mask", path, err) from err
