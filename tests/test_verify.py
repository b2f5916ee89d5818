"""`reg verify`: stat fingerprints skip unchanged files; --full rehashes; changes are marked."""

import os

from factories import write_flame_fixed


def _add_copy(reg, tmp_path):
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")
    assert reg("add", src, "--link", "copy").exit_code == 0


def test_unchanged_files_are_not_rehashed(reg, tmp_path, flame_dest):
    _add_copy(reg, tmp_path)
    code, results = reg.json("verify")
    assert code == 0 and results == [
        {"key": "flame2023", "state": "verified", "rehashed": False, "path": str(flame_dest), "detail": ""}
    ]
    code, results = reg.json("verify", "--full")
    assert code == 0 and results[0]["rehashed"] and results[0]["state"] == "verified"


def test_a_changed_byte_with_mtime_set_back_is_still_seen(reg, tmp_path, flame_dest):
    """mtime can be set back (touch -d, cp -p); ctime cannot, and it is in the fingerprint."""
    _add_copy(reg, tmp_path)
    st = flame_dest.stat()
    with open(flame_dest, "r+b") as f:  # same size, same mtime: only the bytes differ
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(flame_dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert flame_dest.stat().st_mtime_ns == st.st_mtime_ns and flame_dest.stat().st_size == st.st_size
    _, doc = reg.json("status")
    assert doc["assets"]["flame2023"]["state"] == "changed"  # status sees it without hashing
    result = reg("verify")
    assert result.exit_code == 1 and "changed" in result.stdout and "flame2023" in result.stdout
    _, doc = reg.json("status")
    assert doc["assets"]["flame2023"]["state"] == "changed"
    assert any(a["id"] == "check:flame2023" for a in doc["machine_actions"])


def test_replaced_file_is_detected_without_full(reg, tmp_path, flame_dest):
    _add_copy(reg, tmp_path)
    other = write_flame_fixed(tmp_path / "other.pkl", seed=7)
    os.replace(other, flame_dest)
    _, doc = reg.json("status")
    assert doc["assets"]["flame2023"]["state"] == "changed"  # status sees the stat change at once
    code, results = reg.json("verify", "flame2023")
    assert code == 1 and results[0]["state"] == "changed" and results[0]["rehashed"]
    assert "changed" in reg("show", "flame2023").stdout


def test_missing_and_restored(reg, tmp_path, flame_dest):
    _add_copy(reg, tmp_path)
    data = flame_dest.read_bytes()
    flame_dest.unlink()
    code, results = reg.json("verify")
    assert code == 1 and results[0]["state"] == "missing"
    flame_dest.write_bytes(data)  # restored: new inode and mtime, same bytes
    code, results = reg.json("verify")
    assert code == 0 and results[0]["state"] == "verified" and results[0]["rehashed"]


def test_symlinked_placement_is_verified_through_the_store(reg, tmp_path, flame_dest):
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")
    assert reg("add", src).exit_code == 0
    twin = tmp_path / "twin.pkl"
    twin.write_bytes(src.read_bytes())
    flame_dest.unlink()
    flame_dest.symlink_to(twin)  # someone re-pointed the link at a different inode
    code, results = reg.json("verify")
    assert results[0]["rehashed"] and results[0]["state"] == "verified"  # same bytes: still verified


def test_verify_store_finds_corrupt_and_missing_objects_and_repairs_from_a_placement(reg, tmp_path, flame_dest):
    _add_copy(reg, tmp_path)
    obj = reg.objects()[0]
    os.chmod(obj, 0o644)
    obj.write_bytes(b"tampered")  # behind a copy placement, `verify --full` cannot see this
    assert reg("verify", "--full").exit_code == 0
    code, problems = reg.json("verify", "--store")
    assert code == 0 and [(p["problem"], p["repaired"]) for p in problems] == [("corrupt", True)]
    assert obj.read_bytes() == flame_dest.read_bytes()
    obj.unlink()
    flame_dest.unlink()  # no good copy left anywhere
    result = reg("verify", "--store")
    assert result.exit_code == 1 and "missing" in result.stdout and "flame2023" in result.stdout
