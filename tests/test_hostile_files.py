"""Files built to hurt the reader, not to run code: each is refused by `reg add`, run as its own
process with 512 MiB of address space, within a generous timeout, with one paragraph naming the
file, and nothing is stored or placed. Also: wrong-but-harmless files refused by `checks`, and
damaged archives and MAT files refused without a traceback."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest
from factories import (
    write_codecs_pickle,
    write_corrupt_mat73,
    write_flame_fixed,
    write_huge_shape_pickle,
    write_inflating_checkpoint,
    write_malicious_pickle,
    write_nested_tuple_key_pickle,
    write_tensorless_checkpoint,
    write_torch_checkpoint,
    write_trailing_data_pickle,
    write_zip,
    write_zip_with_bad_crc,
    write_zip_with_renamed_header,
)


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))


def add_in_a_small_process(reg, file, *args):
    """`python -m reg add FILE` as a child with 512 MiB of address space and 30 s."""
    cmd = [sys.executable, "-m", "reg", "--root", str(reg.root), "add", str(file), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, preexec_fn=_limit_memory)


def assert_refused(reg, result, file, *fragments):
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # not 139 (SIGSEGV) or -9
    assert "Traceback" not in result.stderr
    paragraph = result.stderr.strip()
    assert paragraph.startswith("error: ") and "\n" not in paragraph, paragraph
    assert str(file) in paragraph and "Nothing was stored or placed" in paragraph
    for fragment in fragments:
        assert fragment in paragraph, paragraph
    assert reg.objects() == []
    _, doc = reg.json("status")
    assert doc["summary"]["verified"] == 0


def test_a_good_file_still_goes_through_the_small_process(reg, tmp_path, flame_dest):
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")
    result = add_in_a_small_process(reg, src)
    assert result.returncode == 0, result.stderr
    assert flame_dest.read_bytes() == src.read_bytes()


@pytest.mark.parametrize(
    "write, fragments",
    [
        (write_nested_tuple_key_pickle, ["nests containers more than 100 deep"]),
        (write_trailing_data_pickle, ["after the pickle's end (STOP)"]),
        (write_codecs_pickle, ["'punycode' encoding", "only use latin1"]),
        (write_huge_shape_pickle, ["an integer of 400,000 bits"]),
    ],
)
def test_hostile_flame_pickles_are_refused_in_bounded_time_and_memory(reg, tmp_path, flame_dest, write, fragments):
    src = write(tmp_path / "flame2023_no_jaw.pkl")
    result = add_in_a_small_process(reg, src)
    assert_refused(reg, result, src, "is not a valid FLAME 2023", *fragments)
    assert not os.path.lexists(flame_dest)


def test_checkpoint_whose_data_pkl_inflates_to_a_gigabyte_is_refused(reg, tmp_path):
    src = write_inflating_checkpoint(tmp_path / "cap4d_mmdm_100k.ckpt")
    assert src.stat().st_size < 8 << 20
    result = add_in_a_small_process(reg, src)
    assert_refused(reg, result, src, "decompression bomb")


def test_pickle_with_a_live_payload_is_not_placed_as_face_parsing_weights(reg, tmp_path):
    marker = tmp_path / "pwned"
    src = write_zip(
        tmp_path / "79999_iter.pth",
        {"archive/data.pkl": write_malicious_pickle(tmp_path / "p.pkl", marker).read_bytes()},
    )
    result = reg("add", src)
    assert result.exit_code == 1 and "posix.system" in result.stderr and "could run code" in result.stderr
    assert not marker.exists() and reg.objects() == []
    bare = write_malicious_pickle(tmp_path / "bare" / "79999_iter.pth", marker)  # torch.load reads bare pickles too
    result = reg("add", bare)
    assert result.exit_code == 1 and "not a zip-format PyTorch checkpoint" in result.stderr
    assert not marker.exists() and reg.objects() == []
    assert not (reg.pipeline_root("talkinggaussian") / "data_utils/face_parsing/79999_iter.pth").exists()


def test_every_shipped_weights_asset_declares_a_validator():
    import tomllib
    from importlib.resources import files

    assets = tomllib.loads(files("reg.manifests").joinpath("assets.toml").read_text())["assets"]
    weights = {k: a.get("validator", "none") for k, a in assets.items() if a["kind"] == "weights"}
    assert weights and "none" not in weights.values(), weights


@pytest.mark.parametrize(
    "state, fragment",
    [
        ({"epoch": 3, "global_step": 100000}, "no top-level key 'state_dict'"),
        ({"state_dict": {}, "global_step": 100000}, "holds 0 tensor(s)"),
        ([1, 2, 3], "its top level is a list"),
    ],
)
def test_checkpoint_without_what_cap4d_reads_is_refused(reg, tmp_path, state, fragment):
    src = write_tensorless_checkpoint(tmp_path / "cap4d_mmdm_100k.ckpt", state)
    result = reg("add", src)
    assert result.exit_code == 1 and fragment in result.stderr and str(src) in result.stderr
    assert reg.objects() == []


def test_whisper_needs_dims_and_model_state_dict(reg, tmp_path):
    src = write_torch_checkpoint(tmp_path / "tiny.pt")  # a Lightning-style checkpoint, not Whisper's
    result = reg("add", src)
    assert result.exit_code == 1 and "no top-level key 'dims', 'model_state_dict'" in result.stderr
    assert reg.objects() == []


def test_min_bytes_refuses_a_stand_in(reg, tmp_path):
    (reg.root / "manifests").mkdir(parents=True, exist_ok=True)
    (reg.root / "manifests" / "big.toml").write_text(
        '[assets.big_ckpt]\nname = "Big"\nkind = "weights"\npipeline = "cap4d"\npath = "big.ckpt"\n'
        'validator = "torch-ckpt"\nchecks = { min_bytes = 1000000 }\nsource = { url = "https://example.org/big.ckpt" }\n'
    )
    src = write_torch_checkpoint(tmp_path / "big.ckpt")
    result = reg("add", src)
    assert result.exit_code == 1 and "and a real one is at least 1,000,000" in result.stderr
    assert reg.objects() == []


def test_storage_shorter_than_its_tensors_is_refused(reg, tmp_path):
    good = write_torch_checkpoint(tmp_path / "good.ckpt")
    import zipfile

    with zipfile.ZipFile(good) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["archive/data/0"] = members["archive/data/0"][:8]  # 2 floats of the 16 the pickle describes
    src = write_zip(tmp_path / "cap4d_mmdm_100k.ckpt", members)
    result = reg("add", src)
    assert result.exit_code == 1 and "tensor storage 0 should hold 16 x 4 bytes" in result.stderr


def test_corrupt_matlab_v73_is_a_clean_error(reg, tmp_path):
    pytest.importorskip("h5py")
    src = write_corrupt_mat73(tmp_path / "01_MorphableModel.mat")
    result = reg("add", src)
    assert result.exit_code == 1 and "is not a readable HDF5 file" in result.stderr and str(src) in result.stderr
    assert reg.objects() == []


@pytest.mark.parametrize("damage", [write_zip_with_renamed_header, write_zip_with_bad_crc])
def test_damaged_zip_is_a_clean_error(reg, tmp_path, flame_dest, damage):
    pkl = write_flame_fixed(tmp_path / "x.pkl").read_bytes()
    src = damage(tmp_path / "FLAME2023.zip", "FLAME2023/flame2023_no_jaw.pkl", pkl)
    result = reg("add", src)
    assert result.exit_code == 1, result.stderr
    assert f"The archive {src} is damaged" in result.stderr and "Download the archive again" in result.stderr
    assert reg.objects() == [] and not os.path.lexists(flame_dest)
    tmp = reg.root / "objects" / "tmp"
    assert not tmp.exists() or not list(tmp.iterdir())


def test_zip_bomb_archive_is_refused_before_inflating(reg, tmp_path, flame_dest):
    import zipfile

    src = tmp_path / "FLAME2023.zip"
    info = zipfile.ZipInfo("FLAME2023/flame2023_no_jaw.pkl")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(src, "w") as z, z.open(info, "w", force_zip64=True) as f:
        for _ in range(16):
            f.write(bytes(64 << 20))  # 1 GiB of zeros, ~1 MB on disk
    result = add_in_a_small_process(reg, src)
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"The archive {src} has a member" in result.stderr and "decompression bomb" in result.stderr
    assert reg.objects() == [] and not os.path.lexists(flame_dest)
