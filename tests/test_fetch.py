"""`reg fetch` through the real huggingface_hub client against a local Hub stand-in (HF_ENDPOINT).
Nothing inside huggingface_hub is patched: the server speaks the Hub's HTTP."""

import pytest
from factories import write_torch_checkpoint
from hubserver import Hub, serve

MANIFEST = """
[assets.demo_ckpt]
kind = "weights"
pipeline = "cap4d"
path = "data/weights/demo.ckpt"
validator = "torch-ckpt"
source = { huggingface = "acme/models", file = "demo.ckpt", revision = "main" }

[assets.demo_blob]
kind = "weights"
pipeline = "cap4d"
path = "data/weights/blob.bin"
source = { huggingface = "acme/models", file = "blob.bin" }

[assets.gated_ckpt]
kind = "weights"
pipeline = "cap4d"
path = "data/weights/gated.ckpt"
validator = "torch-ckpt"
source = { huggingface = "acme/gated", file = "gated.ckpt" }
"""


@pytest.fixture
def hub(reg, tmp_path, monkeypatch):
    h = Hub()
    server, url = serve(h)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored login from this machine
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    (reg.root / "manifests").mkdir(parents=True, exist_ok=True)
    (reg.root / "manifests" / "test.toml").write_text(MANIFEST)
    h.url = url
    yield h
    server.shutdown()


@pytest.fixture
def ckpt(tmp_path) -> bytes:
    return write_torch_checkpoint(tmp_path / "made.ckpt").read_bytes()


def _dest(reg):
    return reg.pipeline_root("cap4d") / "data/weights/demo.ckpt"


def test_status_lists_the_fetch_and_fetch_does_it(reg, hub, ckpt):
    f = hub.add("acme/models", "demo.ckpt", ckpt)
    _, doc = reg.json("status")
    action = next(a for a in doc["machine_actions"] if a["id"] == "fetch:demo_ckpt")
    assert action["commands"] == ["reg fetch demo_ckpt"]
    code, results = reg.json("fetch", "demo_ckpt")
    assert code == 0 and results[0]["sha256"] == f.sha256
    assert _dest(reg).read_bytes() == ckpt and reg.objects()[0].read_bytes() == ckpt
    assert f"{hub.url}/acme/models/resolve/main/demo.ckpt" in results[0]["source"]
    _, doc = reg.json("status")
    assert doc["assets"]["demo_ckpt"]["state"] == "verified"
    hub.requests.clear()
    code, again = reg.json("fetch", "demo_ckpt")
    assert code == 0 and "already present and verified" in again[0]["summary"] and hub.requests == []
    _dest(reg).unlink()  # placement lost, object still stored: re-placed without the network
    code, again = reg.json("fetch", "demo_ckpt")
    assert code == 0 and _dest(reg).read_bytes() == ckpt and hub.requests == []


def test_mismatch_with_published_sha256_leaves_nothing(reg, hub, ckpt):
    hub.add("acme/models", "demo.ckpt", ckpt, published_sha256="b" * 64)
    result = reg("fetch", "demo_ckpt")
    assert result.exit_code == 1
    assert "b" * 64 in result.stderr and "has sha256" in result.stderr
    assert reg.objects() == [] and not _dest(reg).exists()
    assert list((reg.root / "objects" / "tmp").glob("*")) == []


def test_cut_mid_body_is_resumed_by_the_client(reg, hub):
    import os

    from huggingface_hub import constants

    data = os.urandom(3 * constants.DOWNLOAD_CHUNK_SIZE)  # the client counts whole chunks received
    f = hub.add("acme/models", "blob.bin", data, cut_first=1)
    code, results = reg.json("fetch", "demo_blob")
    assert code == 0 and results[0]["sha256"] == f.sha256
    ranges = [r[2] for r in hub.requests if r[0] == "GET"]
    assert ranges[0] is None and ranges[1] == f"bytes={constants.DOWNLOAD_CHUNK_SIZE}-"
    assert (reg.pipeline_root("cap4d") / "data/weights/blob.bin").read_bytes() == data


def test_interrupted_fetch_resumes_in_the_next_run(reg, hub):
    import os

    from huggingface_hub import constants

    data = os.urandom(3 * constants.DOWNLOAD_CHUNK_SIZE)
    f = hub.add("acme/models", "blob.bin", data, cut_first=1, fail_after_cut=True)
    failed = reg("fetch", "demo_blob")
    assert failed.exit_code == 1 and "Run `reg fetch demo_blob` again to resume" in failed.stderr
    parts = list((reg.root / "objects" / "tmp").glob("fetch-demo_blob-*.part"))
    got = constants.DOWNLOAD_CHUNK_SIZE
    assert len(parts) == 1 and parts[0].stat().st_size == got and reg.objects() == []
    hub.heal()
    hub.requests.clear()
    code, results = reg.json("fetch", "demo_blob")
    assert code == 0 and results[0]["sha256"] == f.sha256
    assert (reg.pipeline_root("cap4d") / "data/weights/blob.bin").read_bytes() == data
    assert [r[2] for r in hub.requests if r[0] == "GET"] == [f"bytes={got}-"]
    assert list((reg.root / "objects" / "tmp").glob("*.part")) == []


def test_gated_repository_becomes_an_owner_action(reg, hub, ckpt):
    hub.add("acme/gated", "gated.ckpt", ckpt)
    hub.gated.add("acme/gated")
    result = reg("fetch", "gated_ckpt")
    assert result.exit_code == 1 and "gated repository" in result.stderr and "Traceback" not in result.stderr
    _, doc = reg.json("status")
    action = next(a for a in doc["owner_actions"] if a["id"] == "hf-gated:acme/gated")
    assert action["commands"] == ["reg fetch gated_ckpt"] and f"{hub.url}/acme/gated" in action["steps"][0]
    assert not any(a["id"] == "fetch:gated_ckpt" for a in doc["machine_actions"])


def test_token_from_the_environment_is_sent(reg, hub, ckpt, monkeypatch):
    hub.add("acme/models", "demo.ckpt", ckpt)
    monkeypatch.setenv("HF_TOKEN", "hf_testtoken")
    assert reg("fetch", "demo_ckpt").exit_code == 0
    assert {r[3] for r in hub.requests} == {"Bearer hf_testtoken"}


@pytest.mark.parametrize("how", ["env", "flag"])
def test_offline_mode_says_what_cannot_be_had(reg, hub, ckpt, monkeypatch, how):
    hub.add("acme/models", "demo.ckpt", ckpt)
    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = reg("fetch", "demo_ckpt", *(["--offline"] if how == "flag" else []))
    assert result.exit_code == 1 and "offline mode is on" in result.stderr and "demo_ckpt" in result.stderr
    assert hub.requests == []


def test_missing_for_v8_leaves_only_owner_actions(reg, hub, ckpt):
    hub.add("ftaubner/cap4d", "cap4d_mmdm_100k.ckpt", ckpt)
    hub.add("mirror", "download.pytorch.org/models/vgg16-397923af.pth", ckpt)
    assert reg("config", "mirrors.download.pytorch.org", f"{hub.url}/files/mirror/download.pytorch.org").exit_code == 0
    code, results = reg.json("fetch", "--missing", "--episode", "11", "--version", "v8")
    assert code == 0 and sorted(r["key"] for r in results) == ["cap4d_mmdm", "lpips_vgg16"]
    _, doc = reg.json("status")
    v8 = next(v for v in doc["versions"] if (v["episode"], v["version"]) == ("11", "v8"))
    assert {b["action"].split(":")[0] for b in v8["blockers"]} == {"licence", "provide"}
    again = reg("fetch", "--missing", "--episode", "11", "--version", "v8")
    assert again.exit_code == 0 and "Nothing to fetch" in again.stdout


def test_gated_licence_asset_cannot_be_fetched(reg, hub):
    result = reg("fetch", "flame2023")
    assert result.exit_code == 1 and "register for FLAME" in result.stderr
