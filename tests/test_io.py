"""tessera.io: the one atomic write and the one file signature."""

import os

import pytest

from tessera.io import atomic_open, atomic_write_text, file_signature, files_signature, is_temp_name, temp_path


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_atomic_open_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert not temp_path(target).exists()


def test_temp_name_is_recognized_and_in_same_directory(tmp_path):
    tmp = temp_path(tmp_path / "x.npy")
    assert tmp.parent == tmp_path and is_temp_name(tmp.name) and str(os.getpid()) in tmp.name
    assert not is_temp_name("x.npy")


def test_file_signature_changes_with_content(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"a")
    before = file_signature(f)
    f.write_bytes(b"ab")
    assert file_signature(f) != before and file_signature(f).endswith(":2")
    assert files_signature([f, f]) == f"{file_signature(f)};{file_signature(f)}"
