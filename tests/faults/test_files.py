"""Damaged checkpoints and failed writes: every error names the file, nothing is lost."""

from __future__ import annotations

import errno
import io
import os

import pytest
import torch
from conftest import make_trainer

from s4seg.atomic import write_atomic
from s4seg.training import read_checkpoint
from s4seg.training.checkpoint import save_atomic


def _checkpoint(tmp_path):
    t = make_trainer(method="supervised", max_steps=2, eval_interval=100)
    t.fit()
    path = save_atomic(t.state_dict(), tmp_path / "last.pt")
    return t, path


@pytest.mark.parametrize("where", [0.2, 0.5, 0.8, 0.97])
def test_bit_rot_inside_a_checkpoint_is_caught_and_names_the_file(tmp_path, where) -> None:
    _, path = _checkpoint(tmp_path)
    data = bytearray(path.read_bytes())
    # Flip 256 bytes: inside a tensor's stored entry (which torch.load alone reads
    # without complaint, only the CRC catches it), or in the archive's directory.
    at = int(len(data) * where)
    data[at : at + 256] = bytes(b ^ 0x5A for b in data[at : at + 256])
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"last\.pt.*(CRC|not a whole)"):
        read_checkpoint(path)


def test_an_empty_checkpoint_file_says_so(tmp_path) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"last\.pt.*empty \(0 bytes\)"):
        read_checkpoint(path)


def test_a_truncated_checkpoint_names_the_file(tmp_path) -> None:
    _, path = _checkpoint(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(ValueError, match=r"last\.pt.*not a whole torch\.save archive"):
        read_checkpoint(path)


def test_a_bare_state_dict_passed_as_a_checkpoint_says_what_to_call(tmp_path) -> None:
    t, _ = _checkpoint(tmp_path)
    bare = tmp_path / "weights.pt"
    torch.save(t.generator.state_dict(), bare)
    with pytest.raises(ValueError, match=r"weights\.pt: not a Trainer checkpoint.*load_weights"):
        t.load_checkpoint(bare)


class _FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def fileno(self) -> int:
        return self.f.fileno()

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        self.f.close()
        super().close()


def test_a_full_disk_during_a_checkpoint_write_says_no_space_and_keeps_the_old_file(
    tmp_path, monkeypatch
) -> None:
    t, path = _checkpoint(tmp_path)
    before = path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: _FullDisk(real_fdopen(fd, mode), 4096))
    # torch.save alone would report "unexpected pos ..." here.
    with pytest.raises(OSError, match=r"no space left on device while writing .*last\.pt.*free"):
        save_atomic(t.state_dict(), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_a_read_only_folder_is_named(tmp_path, monkeypatch) -> None:
    # Simulated: the tests may run as root, for whom chmod does not make a folder read-only.
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionError, match=r"the folder .* is not writable"):
        write_atomic(tmp_path / "config.json", lambda f: f.write("{}"), binary=False)
