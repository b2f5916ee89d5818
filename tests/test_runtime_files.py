"""Files the pipelines would download at run time: catalogued with their real placement (torch hub
cache, Hugging Face hub cache, an archive member, a Google Drive file), fetched ahead through the
real clients against the local stand-in server, and checked by content (npy, ONNX, TF .pb, tar,
legacy torch.save)."""

import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from factories import write_torch_checkpoint, write_zip
from hubserver import Hub, serve

MANIFEST = """
[assets.hub_ckpt]
kind = "weights"
path = "{torch_home}/hub/checkpoints/NAME"
validator = "torch-ckpt"
checks = { min_tensors = 1, torch_hub_hash = true }
source = { url = "HUB/files/models/NAME" }

[assets.buf_det]
kind = "weights"
pipeline = "latentsync"
path = "checkpoints/auxiliary/models/buffalo_l/det_10g.onnx"
validator = "onnx"
source = { url = "HUB/files/insightface/buffalo_l.zip", member = "det_10g.onnx" }

[assets.buf_lmk]
kind = "weights"
pipeline = "latentsync"
path = "checkpoints/auxiliary/models/buffalo_l/2d106det.onnx"
validator = "onnx"
source = { url = "HUB/files/insightface/buffalo_l.zip", member = "2d106det.onnx" }

[assets.ds_graph]
kind = "weights"
path = "~/.tensorflow/models/deepspeech-0_1_0-b90017e8.pb"
validator = "tf-pb"
checks = { sha1 = "SHA1" }
source = { url = "HUB/files/osmr/deepspeech.pb.zip", member = "deepspeech-0_1_0-b90017e8.pb" }

[assets.dict_npy]
kind = "aux-data"
pipeline = "talkinggaussian"
path = "data_utils/face_tracking/3DMM/keys.npy"
validator = "npy"
checks = { dtype = "|O", shape = [] }
source = { url = "HUB/files/adnerf/keys.npy" }

[assets.any_tar]
kind = "aux-data"
path = "~/data/pack.tar"
validator = "tar"
source = { url = "HUB/files/pack.tar" }

[assets.any_onnx]
kind = "weights"
path = "~/data/model.onnx"
validator = "onnx"
source = { url = "HUB/files/model.onnx" }

[assets.legacy_ckpt]
kind = "weights"
path = "~/data/legacy.pth"
validator = "torch-ckpt"
checks = { min_tensors = 2 }
source = { url = "HUB/files/legacy.pth" }
"""


# --- files the tests make: structurally real, tiny ------------------------------------------


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (the lengths here stay under 128: one byte)."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def onnx_model(op: bytes = b"Conv") -> bytes:
    node = _field(1, b"x") + _field(2, b"y") + _field(4, op)  # input, output, op_type
    graph = _field(1, node) + _field(2, b"g")
    return bytes([1 << 3, 8]) + _field(7, graph) + _field(8, bytes([2 << 3, 13]))  # ir_version 8, opset 13


def tf_graph() -> bytes:
    nodes = [_field(1, b"input_node") + _field(2, b"Placeholder"), _field(1, b"logits") + _field(2, b"MatMul")]
    return b"".join(_field(1, n) for n in nodes) + _field(4, bytes([1 << 3, 26]))  # versions { producer: 26 }


def npy_bytes(value) -> bytes:
    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=True)
    return buf.getvalue()


def legacy_checkpoint(tmp_path, cut: int = 0) -> bytes:
    """torch.save before 1.6: magic, protocol, sys_info, the object, storage keys, raw storages."""
    with zipfile.ZipFile(write_torch_checkpoint(tmp_path / "z.ckpt")) as z:
        obj = z.read("archive/data.pkl")
        raw = {k: z.read(f"archive/data/{k}") for k in ("0", "1")}
    out = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
    out += pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2) + obj
    out += pickle.dumps(sorted(raw), protocol=2)
    for key in sorted(raw):
        out += struct.pack("<q", len(raw[key]) // 4) + raw[key]
    return out[: len(out) - cut]


@pytest.fixture
def hub(reg, tmp_path, monkeypatch):
    h = Hub()
    server, url = serve(h)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for var in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    h.url = url
    h.ckpt = write_torch_checkpoint(tmp_path / "made.ckpt").read_bytes()
    h.pb = tf_graph()
    manifest = MANIFEST.replace("HUB", url).replace("SHA1", hashlib.sha1(h.pb).hexdigest())
    (reg.root / "manifests").mkdir(parents=True, exist_ok=True)
    (reg.root / "manifests" / "test.toml").write_text(manifest.replace("NAME", f"tiny-{_sha(h.ckpt)[:8]}.pth"))
    yield h
    server.shutdown()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _state(reg, key) -> str:
    return reg.json("status")[1]["assets"][key]["state"]


# --- 2. placements: the torch hub cache ------------------------------------------------------


@pytest.mark.parametrize("how", ["default", "TORCH_HOME", "reg config"])
def test_torch_hub_file_lands_where_torch_hub_looks(reg, hub, tmp_path, monkeypatch, how):
    name = f"tiny-{_sha(hub.ckpt)[:8]}.pth"
    hub.add("models", name, hub.ckpt)
    torch_home = {
        "default": tmp_path / "home/.cache/torch",
        "TORCH_HOME": tmp_path / "th",
        "reg config": tmp_path / "configured",
    }[how]
    if how == "TORCH_HOME":
        monkeypatch.setenv("TORCH_HOME", str(torch_home))
    if how == "reg config":
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "not-this-one"))
        assert reg("config", "caches.torch_home", torch_home).exit_code == 0
    code, report = reg.json("fetch", "hub_ckpt")
    assert code == 0, report
    placed = torch_home / "hub" / "checkpoints" / name
    assert report["fetched"][0]["path"] == str(placed) and placed.read_bytes() == hub.ckpt
    assert _state(reg, "hub_ckpt") == "verified"


def test_torch_hub_name_whose_hash_prefix_does_not_match_is_refused(reg, hub, tmp_path):
    other = write_torch_checkpoint(tmp_path / "other.ckpt", drop_storage=False).read_bytes() + b""
    other = other.replace(b"global_step", b"global_stap")  # a different file under the first one's name
    name = f"tiny-{_sha(hub.ckpt)[:8]}.pth"
    hub.add("models", name, other)
    result = reg("fetch", "hub_ckpt")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert f"does not start with {_sha(hub.ckpt)[:8]}" in result.stderr and "torch.hub refuses it too" in result.stderr
    assert not (tmp_path / "home/.cache/torch/hub/checkpoints" / name).exists() and reg.objects() == []


# --- 2. placements: the Hugging Face hub cache, written by huggingface_hub itself ------------------


def safetensors_bytes() -> bytes:
    data = np.arange(4, dtype=np.float32).tobytes()
    header = json.dumps({"decoder.conv_in.bias": {"dtype": "F32", "shape": [4], "data_offsets": [0, len(data)]}})
    return struct.pack("<Q", len(header)) + header.encode() + data


LOAD_OFFLINE = """
import sys
from huggingface_hub import hf_hub_download
print(hf_hub_download("stabilityai/sd-vae-ft-mse", sys.argv[1]))
"""


def _offline_load(hub_cache, file: str) -> subprocess.CompletedProcess:
    """What diffusers' from_pretrained does with HF_HUB_OFFLINE=1: resolve refs/main in the cache."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache), "HF_ENDPOINT": "http://127.0.0.1:9"}
    return subprocess.run(
        [sys.executable, "-c", LOAD_OFFLINE, file], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize("cache", ["HF_HOME", "HF_HUB_CACHE", "reg config"])
def test_hub_snapshot_is_found_offline_by_huggingface_hub(reg, hub, tmp_path, monkeypatch, cache):
    weights = hub.add("stabilityai/sd-vae-ft-mse", "diffusion_pytorch_model.safetensors", safetensors_bytes())
    hub.add("stabilityai/sd-vae-ft-mse", "config.json", b'{"_class_name": "AutoencoderKL"}')
    hub_cache = tmp_path / "hf-home" / "hub"
    if cache == "HF_HUB_CACHE":
        hub_cache = tmp_path / "elsewhere"
        monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    if cache == "reg config":
        assert reg("config", "caches.hf_home", tmp_path / "configured").exit_code == 0
        hub_cache = tmp_path / "configured" / "hub"
    code, report = reg.json("fetch", "sd_vae_ft_mse", "sd_vae_ft_mse_config")
    assert code == 0, report
    snapshot = (
        hub_cache / "models--stabilityai--sd-vae-ft-mse" / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    )
    assert {r["path"] for r in report["fetched"]} == {
        str(snapshot / "diffusion_pytorch_model.safetensors"),
        str(snapshot / "config.json"),
    }
    assert (hub_cache / "models--stabilityai--sd-vae-ft-mse" / "refs" / "main").read_text().startswith("0123")
    _, doc = reg.json("status")
    assert doc["assets"]["sd_vae_ft_mse"]["state"] == "verified"
    assert doc["assets"]["sd_vae_ft_mse"]["sha256"] == weights.sha256
    assert doc["assets"]["sd_vae_ft_mse_config"]["state"] == "unchecked"  # no sha256 published, none pinned yet
    found = _offline_load(hub_cache, "diffusion_pytorch_model.safetensors")
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).read_bytes() == weights.data
    hub.requests.clear()
    code, again = reg.json("fetch", "sd_vae_ft_mse")
    assert code == 0 and again["present"] and hub.requests == []


def test_hub_file_with_a_wrong_published_hash_is_refused_and_evicted(reg, hub, tmp_path):
    hub.add(
        "stabilityai/sd-vae-ft-mse",
        "diffusion_pytorch_model.safetensors",
        safetensors_bytes(),
        published_sha256="c" * 64,
    )
    result = reg("fetch", "sd_vae_ft_mse")
    assert result.exit_code == 1 and "c" * 64 in result.stderr and "removed from the cache" in result.stderr
    assert _state(reg, "sd_vae_ft_mse") == "missing" and reg.objects() == []
    found = _offline_load(tmp_path / "hf-home" / "hub", "diffusion_pytorch_model.safetensors")
    assert found.returncode != 0  # the pipeline cannot pick up the refused file either


# --- 3. sources: archive members, Google Drive, SHA-1 ------------------------------------------------


def test_archive_members_are_taken_out_and_placed(reg, hub, tmp_path):
    det, lmk = onnx_model(b"Conv"), onnx_model(b"Gemm")
    archive = write_zip(tmp_path / "buffalo_l.zip", {"det_10g.onnx": det, "2d106det.onnx": lmk, "w600k_r50.onnx": det})
    hub.add("insightface", "buffalo_l.zip", archive.read_bytes())
    code, report = reg.json("fetch", "buf_det", "buf_lmk")
    assert code == 0, report
    folder = reg.pipeline_root("latentsync") / "checkpoints/auxiliary/models/buffalo_l"
    assert (folder / "det_10g.onnx").read_bytes() == det and (folder / "2d106det.onnx").read_bytes() == lmk
    assert sorted(p.name for p in folder.iterdir()) == ["2d106det.onnx", "det_10g.onnx"]
    assert report["fetched"][0]["source"] == f"{hub.url}/files/insightface/buffalo_l.zip!det_10g.onnx"
    assert _state(reg, "buf_det") == "verified" and list((reg.root / "objects" / "tmp").glob("*")) == []


def test_archive_without_the_member_says_which_members_it_has(reg, hub, tmp_path):
    archive = write_zip(tmp_path / "buffalo_l.zip", {"buffalo_l/det_10g.onnx": onnx_model()})
    hub.add("insightface", "buffalo_l.zip", archive.read_bytes())
    result = reg("fetch", "buf_det")
    assert result.exit_code == 1 and "has no member 'det_10g.onnx'" in result.stderr
    assert "buffalo_l/det_10g.onnx" in result.stderr and "source.member" in result.stderr


def test_google_drive_file_comes_through_its_download_url(reg, hub):
    file_id = "1bYsI_spptzyuFmfLYqYkcJA6GZWZViNt"  # the shipped mica_pretrained
    hub.add("gdrive", f"download?id={file_id}&export=download&confirm=t", hub.ckpt)
    assert reg("config", "mirrors.drive.usercontent.google.com", f"{hub.url}/files/gdrive").exit_code == 0
    code, report = reg.json("fetch", "mica_pretrained")
    assert code == 0, report
    placed = reg.pipeline_root("pixel3dmm") / "src/pixel3dmm/preprocessing/MICA/data/pretrained/mica.tar"
    assert placed.read_bytes() == hub.ckpt and _state(reg, "mica_pretrained") == "verified"


def test_google_drive_warning_page_is_refused(reg, hub):
    file_id = "1bYsI_spptzyuFmfLYqYkcJA6GZWZViNt"
    page = b"<!DOCTYPE html><html><title>Google Drive - Virus scan warning</title></html>"
    hub.add("gdrive", f"download?id={file_id}&export=download&confirm=t", page, content_type="text/html")
    assert reg("config", "mirrors.drive.usercontent.google.com", f"{hub.url}/files/gdrive").exit_code == 0
    result = reg("fetch", "mica_pretrained")
    assert result.exit_code == 1 and "returned a web page" in result.stderr and reg.objects() == []


def test_deepspeech_graph_from_its_zip_with_the_sha1_upstream_checks(reg, hub, tmp_path):
    archive = write_zip(tmp_path / "ds.zip", {"deepspeech-0_1_0-b90017e8.pb": hub.pb})
    hub.add("osmr", "deepspeech.pb.zip", archive.read_bytes())
    code, report = reg.json("fetch", "ds_graph")
    assert code == 0, report
    assert (tmp_path / "home/.tensorflow/models/deepspeech-0_1_0-b90017e8.pb").read_bytes() == hub.pb
    assert "TensorFlow GraphDef, 2 nodes" in report["fetched"][0]["summary"]


def test_deepspeech_graph_with_another_sha1_is_refused(reg, hub, tmp_path):
    other = tf_graph().replace(b"logits", b"logitz")
    archive = write_zip(tmp_path / "ds.zip", {"deepspeech-0_1_0-b90017e8.pb": other})
    hub.add("osmr", "deepspeech.pb.zip", archive.read_bytes())
    result = reg("fetch", "ds_graph")
    assert result.exit_code == 1 and f"upstream publishes {hashlib.sha1(hub.pb).hexdigest()}" in result.stderr
    assert not (tmp_path / "home/.tensorflow/models/deepspeech-0_1_0-b90017e8.pb").exists()


# --- 4. content checks ------------------------------------------------------------------------


def test_npy_with_the_wrong_dtype_or_shape_is_refused(reg, hub, tmp_path):
    keys = {"keyinds": np.arange(68), "rigid_ids": np.arange(464)}
    for bad, message in [
        (np.zeros((68, 3), dtype=np.float32), "dtype <f4, the pipeline loads |O"),
        (np.array([keys, keys], dtype=object), "shape (2,), the pipeline loads ()"),
        (b"not a numpy file at all", "not a NumPy .npy file"),
    ]:
        f = tmp_path / "keys.npy"
        f.write_bytes(bad if isinstance(bad, bytes) else npy_bytes(bad))
        result = reg("add", f, "--as", "dict_npy")
        assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert "keys.npy is not a valid" in result.stderr and reg.objects() == []
    f.write_bytes(npy_bytes(keys))
    result = reg("add", f, "--as", "dict_npy")
    assert result.exit_code == 0, result.stderr
    assert _state(reg, "dict_npy") == "verified"


def test_shipped_npy_pins_refuse_another_file(reg, tmp_path):
    f = tmp_path / "topology_info.npy"
    f.write_bytes(npy_bytes(np.zeros(4145201 - 128, dtype=np.uint8)))  # the right size, another file
    assert f.stat().st_size == 4145201
    result = reg("add", f)
    assert result.exit_code == 1 and "2edff6a6ad574d2dddf0d0815e0beabfea9369d7c2d6e53e0ba81f809b81e963" in result.stderr


@pytest.mark.parametrize(
    "key, name, good, bad, message",
    [
        ("any_onnx", "model.onnx", onnx_model(), onnx_model()[:-3], "truncated"),
        ("any_onnx", "model.onnx", onnx_model(), b"\x08\x08", "no ir_version and graph"),
        ("any_tar", "pack.tar", None, b"\0" * 1024, "holds no files"),
        ("legacy_ckpt", "legacy.pth", "legacy", "legacy-cut", "runs past the end"),
    ],
    ids=["onnx-cut", "onnx-no-graph", "tar", "torch-legacy"],
)
def test_content_checks_accept_the_real_structure_and_refuse_a_broken_one(
    reg, hub, tmp_path, key, name, good, bad, message
):
    if good is None:
        with tarfile.open(tmp_path / "made.tar", "w") as t:
            t.add(__file__, arcname="a/file.py")
        good = (tmp_path / "made.tar").read_bytes()
    if good == "legacy":
        good, bad = legacy_checkpoint(tmp_path), legacy_checkpoint(tmp_path, cut=3)
    f = tmp_path / name
    f.write_bytes(bad)
    result = reg("add", f, "--as", key)
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    f.write_bytes(good)
    result = reg("add", f, "--as", key)
    assert result.exit_code == 0, result.stderr
    assert _state(reg, key) == "verified"


def test_shipped_runtime_files_are_catalogued_where_the_pipelines_look(reg):
    _, doc = reg.json("status")
    home = reg.home.parent / "home"
    paths = {k: a["path"] for k, a in doc["assets"].items()}
    assert paths["lpips_vgg_lin"] == str(home / ".cache/torch/hub/checkpoints/vgg.pth")
    assert paths["tg_resnet18"] == str(home / ".cache/torch/hub/checkpoints/resnet18-5c106cde.pth")
    assert paths["sd_vae_ft_mse"].startswith(str(home / ".cache/huggingface/hub/models--stabilityai--sd-vae-ft-mse/"))
    assert paths["latentsync_buffalo_l_detector"] == str(
        reg.pipeline_root("latentsync") / "checkpoints/auxiliary/models/buffalo_l/det_10g.onnx"
    )
    assert paths["tg_deepspeech"] == str(home / ".tensorflow/models/deepspeech-0_1_0-b90017e8.pb")


# --- 5. renders run offline once every declared download is verified ----------------------------

STEP = """
import os, pathlib, sys
from huggingface_hub import hf_hub_download
print("HF_HUB_OFFLINE=" + os.environ.get("HF_HUB_OFFLINE", ""), "TRANSFORMERS_OFFLINE=" + os.environ.get("TRANSFORMERS_OFFLINE", ""))
print("TORCH_HOME=" + os.environ["TORCH_HOME"])
vae = hf_hub_download("stabilityai/sd-vae-ft-mse", "diffusion_pytorch_model.safetensors")
print("declared file found at " + vae)
try:
    hf_hub_download("stabilityai/sd-vae-ft-mse", "diffusion_pytorch_model.bin")
except Exception as exc:
    print("undeclared download refused: " + type(exc).__name__)
    sys.exit(3)
pathlib.Path(sys.argv[1]).write_text("rendered")
"""


def test_render_step_runs_offline_and_an_undeclared_download_fails_fast(reg, hub, tmp_path):
    weights = hub.add("stabilityai/sd-vae-ft-mse", "diffusion_pytorch_model.safetensors", safetensors_bytes())
    hub.add("stabilityai/sd-vae-ft-mse", "diffusion_pytorch_model.bin", hub.ckpt)  # there, but not declared
    script = tmp_path / "step.py"
    script.write_text(STEP)
    toy = f"""
[pipelines.offline_toy]
name = "Offline toy"
root = "{reg.pipeline_root("latentsync")}"
requires = ["sd_vae_ft_mse"]

[[pipelines.offline_toy.steps]]
name = "render"
argv = ["{{python}}", "{script}", "{{out}}/video.txt"]
outputs = ["{{out}}/video.txt"]

[episodes.990]
versions.v1 = {{ pipeline = "offline_toy", state = "candidate" }}
"""
    (reg.root / "manifests" / "toy.toml").write_text(toy)
    assert reg("fetch", "sd_vae_ft_mse").exit_code == 0
    hub.requests.clear()
    result = reg("render", "episode", "990", "--version", "v1")
    assert result.exit_code != 0 and hub.requests == []  # not one request reached the server
    [log] = (reg.root / "runs").glob("990-v1-*/log.txt")
    text = log.read_text()
    assert "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1" in text
    assert f"TORCH_HOME={tmp_path / 'home/.cache/torch'}" in text
    assert "declared file found at " + str(tmp_path / "hf-home/hub/models--stabilityai--sd-vae-ft-mse") in text
    assert "undeclared download refused" in text and weights.sha256
