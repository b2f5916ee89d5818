"""`reg add`: identify, verify, store and place; refuse bad input and lose nothing."""

import os
import stat
from pathlib import Path

import pytest
from factories import (
    write_flame_downloaded,
    write_flame_fixed,
    write_malicious_pickle,
    write_torch_checkpoint,
    write_zip,
)


def _v8_blockers(reg):
    _, doc = reg.json("status")
    v8 = next(v for v in doc["versions"] if (v["episode"], v["version"]) == ("11", "v8"))
    return [b["asset"] for b in v8["blockers"]]


def assert_nothing_stored_or_placed(reg, dest):
    assert reg.objects() == []
    assert not os.path.lexists(dest)
    assert [p for p in (reg.root / "objects").rglob("*") if p.is_file()] == []  # no object, no stage left
    _, doc = reg.json("status")
    assert doc["summary"]["verified"] == 0


def test_add_downloaded_pickle_places_it_where_cap4d_loads_it(reg, tmp_path, flame_dest):
    assert "flame2023" in _v8_blockers(reg)
    src = write_flame_downloaded(tmp_path / "downloads" / "flame2023_no_jaw.pkl")
    result = reg("add", src)
    assert result.exit_code == 0, result.stderr
    assert "as downloaded (chumpy)" in result.stdout
    assert flame_dest.is_file() and not flame_dest.is_symlink() and flame_dest.read_bytes() == src.read_bytes()
    obj = reg.objects()[0]
    # Placement and object are private copies: neither shares an inode with the other or the download.
    assert len({os.stat(p).st_ino for p in (src, obj, flame_dest)}) == 3
    assert not obj.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)  # read-only store
    assert "flame2023" not in _v8_blockers(reg)
    assert "flame2020" in _v8_blockers(reg)


def test_editing_the_original_or_the_placement_never_changes_the_object(reg, tmp_path, flame_dest):
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")
    good = src.read_bytes()
    assert reg("add", src).exit_code == 0
    obj = reg.objects()[0]
    with open(src, "r+b") as f:  # the owner's editor, or a download still being written
        f.write(b"X" * 64)
    with open(flame_dest, "r+b") as f:  # a fixer writing the placed file in place (as root would)
        f.write(b"Y" * 64)
    assert obj.read_bytes() == good
    result = reg("verify")
    assert result.exit_code == 1 and "changed" in result.stdout  # the placement, caught by its fingerprint


def test_a_corrupted_shared_object_is_rehashed_and_repaired_on_re_add(reg, tmp_path, flame_dest):
    """A hardlink placement shares the object's inode; an edit there must not be trusted by name."""
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")
    good = src.read_bytes()
    assert reg("add", src, "--link", "hardlink").exit_code == 0
    obj = reg.objects()[0]
    os.chmod(flame_dest, 0o644)
    with open(flame_dest, "r+b") as f:
        f.seek(200)
        f.write(b"Z" * 16)
    assert obj.read_bytes() != good  # the shared inode changed (what --link hardlink risks)
    assert reg("add", src, "--replace").exit_code == 0
    assert obj.read_bytes() == good and flame_dest.read_bytes() == good
    code, results = reg.json("verify", "--full")
    assert code == 0 and results[0]["state"] == "verified"


def test_add_zip_as_downloaded_from_mpi(reg, tmp_path, flame_dest):
    pkl = write_flame_downloaded(tmp_path / "x.pkl").read_bytes()
    archive = write_zip(
        tmp_path / "FLAME2023.zip",
        {"FLAME2023/flame2023_no_jaw.pkl": pkl, "FLAME2023/flame2023.pkl": pkl, "FLAME2023/readme.txt": b"hi"},
    )
    code, results = reg.json("add", archive)
    assert code == 0 and [r["key"] for r in results] == ["flame2023"]
    assert results[0]["source"].endswith("FLAME2023.zip!FLAME2023/flame2023_no_jaw.pkl")
    assert flame_dest.read_bytes() == pkl
    assert "flame2023" not in _v8_blockers(reg)


def test_add_numpy_only_fixed_pickle_and_hardlink_mode(reg, tmp_path, flame_dest):
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")
    result = reg("add", src, "--link", "hardlink")
    assert result.exit_code == 0, result.stderr
    assert "numpy-only (fixed)" in result.stdout
    assert not flame_dest.is_symlink() and os.path.samefile(flame_dest, reg.objects()[0])


def test_symlink_mode_points_into_the_store(reg, tmp_path, flame_dest):
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")
    assert reg("add", src, "--link", "symlink").exit_code == 0
    assert flame_dest.is_symlink() and os.path.realpath(flame_dest) == str(reg.objects()[0])


def test_file_copied_in_place_is_adopted(reg, flame_dest):
    write_flame_downloaded(flame_dest)
    result = reg("add", flame_dest)
    assert result.exit_code == 0, result.stderr
    assert "(adopted)" in result.stdout
    assert flame_dest.is_file() and not flame_dest.is_symlink()
    _, doc = reg.json("status")
    assert doc["assets"]["flame2023"]["state"] == "verified"


def test_malicious_pickle_is_refused_and_nothing_runs(reg, tmp_path, flame_dest):
    marker = tmp_path / "pwned"
    src = write_malicious_pickle(tmp_path / "flame2023_no_jaw.pkl", marker)
    result = reg("add", src)
    assert result.exit_code == 1
    assert "posix.system" in result.stderr and "could run code" in result.stderr and str(src) in result.stderr
    assert not marker.exists()
    assert_nothing_stored_or_placed(reg, flame_dest)


def test_wrong_shape_is_refused(reg, tmp_path, flame_dest):
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl", v_template=(5023, 2))
    result = reg("add", src)
    assert result.exit_code == 1
    assert "'v_template' has shape (5023, 2), CAP4D needs (5023, 3)" in result.stderr
    assert_nothing_stored_or_placed(reg, flame_dest)


def test_wrong_hash_is_refused(reg, tmp_path, flame_dest):
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")
    result = reg("add", src, "--sha256", "0" * 64)
    assert result.exit_code == 1 and "expects " + "0" * 64 in result.stderr
    assert_nothing_stored_or_placed(reg, flame_dest)


def test_zip_with_path_traversal_is_refused(reg, tmp_path, flame_dest):
    pkl = write_flame_fixed(tmp_path / "x.pkl").read_bytes()
    archive = write_zip(tmp_path / "FLAME2023.zip", {"../../flame2023_no_jaw.pkl": pkl})
    result = reg("add", archive)
    assert result.exit_code == 1 and "path traversal" in result.stderr
    assert_nothing_stored_or_placed(reg, flame_dest)


def test_unknown_file_lists_nearest_names(reg, tmp_path, flame_dest):
    src = tmp_path / "flame2023_nojaw.pkl"
    src.write_bytes(b"not a model")
    result = reg("add", src)
    assert result.exit_code == 1
    assert "matches no catalogued file" in result.stderr and "flame2023_no_jaw.pkl" in result.stderr
    assert_nothing_stored_or_placed(reg, flame_dest)


def test_ambiguous_name_asks_for_as(reg, tmp_path):
    src = tmp_path / "alpha-ref.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    result = reg("add", src)
    assert result.exit_code == 1 and "--as" in result.stderr and "ep11.reference" in result.stderr
    assert reg("add", src, "--as", "ep11.reference").exit_code == 0
    assert reg("add", tmp_path / "alpha-ref.png", "--as", "ep11.audio").exit_code == 1  # not a WAV


def test_different_file_for_a_pinned_key_needs_replace(reg, tmp_path, flame_dest):
    first = write_flame_fixed(tmp_path / "a" / "flame2023_no_jaw.pkl", seed=1)
    second = write_flame_fixed(tmp_path / "b" / "flame2023_no_jaw.pkl", seed=2)
    assert reg("add", first).exit_code == 0
    refused = reg("add", second)
    assert refused.exit_code == 1 and "already registered with a different file" in refused.stderr
    assert flame_dest.read_bytes() == first.read_bytes()
    assert reg("add", second, "--replace").exit_code == 0
    assert flame_dest.read_bytes() == second.read_bytes()
    assert len(reg.objects()) == 2  # the old object is kept
    assert "replaced" in reg("show", "flame2023").stdout


def test_different_unregistered_file_at_the_path_is_not_overwritten(reg, tmp_path, flame_dest):
    flame_dest.parent.mkdir(parents=True)
    flame_dest.write_bytes(b"someone else's file")
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")
    result = reg("add", src)
    assert result.exit_code == 1 and "A different file already sits at" in result.stderr
    assert flame_dest.read_bytes() == b"someone else's file" and reg.objects() == []
    assert reg("add", src, "--replace").exit_code == 0
    assert len(reg.objects()) == 2  # the displaced file was kept in the store first


def test_torch_checkpoint_by_zip_layout(reg, tmp_path):
    good = write_torch_checkpoint(tmp_path / "cap4d_mmdm_100k.ckpt")
    code, results = reg.json("add", good)
    assert code == 0 and results[0]["summary"] == "PyTorch checkpoint, 2 tensor storages"


@pytest.mark.parametrize(
    "kwargs, message", [({"drop_storage": True}, "missing from the zip"), ({"evil_global": True}, "posix.getcwd")]
)
def test_bad_torch_checkpoints_are_refused(reg, tmp_path, kwargs, message):
    bad = write_torch_checkpoint(tmp_path / "cap4d_mmdm_100k.ckpt", **kwargs)
    result = reg("add", bad)
    assert result.exit_code == 1 and message in result.stderr
    assert reg.objects() == []


def test_truncated_checkpoint_is_refused(reg, tmp_path):
    good = write_torch_checkpoint(tmp_path / "full.ckpt").read_bytes()
    cut = tmp_path / "cap4d_mmdm_100k.ckpt"
    cut.write_bytes(good[: len(good) // 2])
    result = reg("add", cut)
    assert result.exit_code == 1 and "not a zip-format PyTorch checkpoint" in result.stderr


def test_identified_by_known_sha256_whatever_its_name(reg, tmp_path, flame_dest):
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")
    assert reg("add", src).exit_code == 0
    renamed = tmp_path / "download(1).bin"
    renamed.write_bytes(src.read_bytes())
    code, results = reg.json("add", renamed)
    assert code == 0 and results[0]["key"] == "flame2023" and not results[0]["newly_stored"]


def test_bfm_from_its_tgz_unblocks_talkinggaussian(reg, tmp_path):
    from factories import write_bfm_mat, write_tgz

    mat = write_bfm_mat(tmp_path / "src" / "01_MorphableModel.mat")
    archive = write_tgz(tmp_path / "BaselFaceModel.tgz", {"PublicMM1/01_MorphableModel.mat": mat})
    code, results = reg.json("add", archive)
    assert code == 0 and results[0]["key"] == "bfm2009"
    dest = reg.pipeline_root("talkinggaussian") / "data_utils/face_tracking/3DMM/01_MorphableModel.mat"
    assert dest.read_bytes() == mat.read_bytes()
    _, doc = reg.json("status")
    assert not any(a["id"] == "licence:bfm2009" for a in doc["owner_actions"])
    tg = next(p for p in doc["pipelines"] if p["key"] == "talkinggaussian")
    assert "bfm2009" not in [b["asset"] for b in tg["blockers"]]


def test_bfm_with_wrong_variables_is_refused(reg, tmp_path):
    from factories import write_bfm_mat

    mat = write_bfm_mat(tmp_path / "01_MorphableModel.mat", shapePC=(160470, 80))
    result = reg("add", mat)
    assert result.exit_code == 1 and "'shapePC' has shape (160470, 80)" in result.stderr
    assert reg.objects() == []


def test_two_processes_add_to_one_registry_at_once(reg, tmp_path):
    import subprocess
    import sys

    a = write_flame_fixed(tmp_path / "a" / "flame2023_no_jaw.pkl")
    b = write_flame_fixed(tmp_path / "b" / "generic_model.pkl", seed=3)
    cmd = [sys.executable, "-m", "reg", "--root", str(reg.root), "add"]
    procs = [subprocess.Popen(cmd + [str(f)], stderr=subprocess.PIPE, text=True) for f in (a, b)]
    assert [p.wait() for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    _, doc = reg.json("status")
    assert doc["assets"]["flame2023"]["state"] == doc["assets"]["flame2020"]["state"] == "verified"


def test_checkpoints_written_by_real_torch(reg, tmp_path):
    """Files from real torch.save (tests/data/README.md): accepted where torch's weights_only accepts,
    refused where it refuses, and the refused payload never runs."""
    import shutil
    from pathlib import Path

    data = Path(__file__).parent / "data"
    for name, summary in (
        ("real_torch_checkpoint.pt", "4 tensor storages"),
        ("real_torch_params.pt", "3 tensor storages"),
    ):
        src = tmp_path / name / ("cap4d_mmdm_100k.ckpt" if "checkpoint" in name else "latentsync_unet.pt")
        src.parent.mkdir()
        shutil.copyfile(data / name, src)
        code, results = reg.json("add", src, "--replace")
        assert code == 0 and results[0]["summary"].endswith(summary)
    bad = tmp_path / "bad" / "cap4d_mmdm_100k.ckpt"
    bad.parent.mkdir()
    shutil.copyfile(data / "real_torch_unsafe.pt", bad)
    result = reg("add", bad, "--replace")
    assert result.exit_code == 1 and "posix.system" in result.stderr
    assert not Path("/tmp/reg-pwned").exists()


def test_add_a_folder_goes_on_past_a_bad_file_and_reports_each(reg, tmp_path, flame_dest):
    drop = tmp_path / "drop"
    write_flame_fixed(drop / "flame2023_no_jaw.pkl")
    write_flame_fixed(drop / "FLAME2020" / "generic_model.pkl", seed=3)
    write_malicious_pickle(drop / "79999_iter.pth", tmp_path / "pwned")  # tg_face_parsing: refused
    (drop / "notes.txt").write_text("not catalogued: ignored")
    for _ in range(2):  # twice, as a user would: the second run re-adds what is there
        code, report = reg.json("add", drop)
        assert code == 1
        assert sorted(r["key"] for r in report["added"]) == ["flame2020", "flame2023"]
        assert [Path(f["file"]).name for f in report["failed"]] == ["79999_iter.pth"]
        assert report["failed"][0]["error"] in ("UnsafeFileError", "ValidationError")
    assert len(reg.objects()) == 2 and not (tmp_path / "pwned").exists()
    text = reg("add", drop / "flame2023_no_jaw.pkl", drop / "79999_iter.pth")
    assert text.exit_code == 1 and "added 1, failed 1" in text.stdout and "Traceback" not in text.stderr
