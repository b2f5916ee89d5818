"""`reg fetch` through the real huggingface_hub client against a local Hub stand-in (HF_ENDPOINT).
Nothing inside huggingface_hub is patched: the server speaks the Hub's HTTP."""

import hashlib

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

[assets.web_blob]
kind = "weights"
pipeline = "cap4d"
path = "data/weights/web.bin"
source = { url = "HUB/files/web/blob.bin" }

[assets.web_ckpt]
kind = "weights"
pipeline = "cap4d"
path = "data/weights/web.ckpt"
validator = "torch-ckpt"
source = { url = "HUB/files/web/model.ckpt" }

# The shipped entry, less the torch.hub name check: a stand-in cannot have a sha256 starting 397923af
# (tests/test_runtime_files.py checks that rule with files named for their own hash).
[assets.lpips_vgg16]
kind = "weights"
path = "{torch_home}/hub/checkpoints/vgg16-397923af.pth"
validator = "torch-ckpt"
checks = { min_tensors = 1 }
source = { url = "https://download.pytorch.org/models/vgg16-397923af.pth" }

[assets."vendor.blob"]
kind = "weights"
pipeline = "cap4d"
path = "data/weights/vendor.bin"
source = { huggingface = "acme/models", file = "vendor.bin" }
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
    (reg.root / "manifests" / "test.toml").write_text(MANIFEST.replace("HUB", url))
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
    code, report = reg.json("fetch", "demo_ckpt")
    [result] = report["fetched"]
    assert code == 0 and result["sha256"] == f.sha256 and report["present"] == report["failed"] == []
    assert _dest(reg).read_bytes() == ckpt and reg.objects()[0].read_bytes() == ckpt
    assert f"{hub.url}/acme/models/resolve/main/demo.ckpt" in result["source"]
    _, doc = reg.json("status")
    assert doc["assets"]["demo_ckpt"]["state"] == "verified"
    hub.requests.clear()
    code, again = reg.json("fetch", "demo_ckpt")
    assert code == 0 and again["fetched"] == [] and hub.requests == []
    assert "already present and verified" in again["present"][0]["summary"]
    _dest(reg).unlink()  # placement lost, object still stored: re-placed without the network
    code, again = reg.json("fetch", "demo_ckpt")
    assert code == 0 and again["fetched"][0]["key"] == "demo_ckpt"
    assert _dest(reg).read_bytes() == ckpt and hub.requests == []


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
    code, report = reg.json("fetch", "demo_blob")
    assert code == 0 and report["fetched"][0]["sha256"] == f.sha256
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
    parts = _parts(reg)
    got = constants.DOWNLOAD_CHUNK_SIZE
    assert len(parts) == 1 and parts[0].stat().st_size == got and reg.objects() == []
    hub.heal()
    hub.requests.clear()
    code, report = reg.json("fetch", "demo_blob")
    assert code == 0 and report["fetched"][0]["sha256"] == f.sha256
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
    code, report = reg.json("fetch", "--missing", "--episode", "11", "--version", "v8")
    assert code == 0 and sorted(r["key"] for r in report["fetched"]) == ["cap4d_mmdm", "lpips_vgg16"]
    _, doc = reg.json("status")
    v8 = next(v for v in doc["versions"] if (v["episode"], v["version"]) == ("11", "v8"))
    assert {b["action"].split(":")[0] for b in v8["blockers"]} == {"licence", "provide"}
    again = reg("fetch", "--missing", "--episode", "11", "--version", "v8")
    assert again.exit_code == 0 and "Nothing to fetch" in again.stdout


def test_gated_licence_asset_cannot_be_fetched(reg, hub):
    result = reg("fetch", "flame2023")
    assert result.exit_code == 1 and "register for FLAME" in result.stderr


CHUNK = 10 << 20  # huggingface_hub's DOWNLOAD_CHUNK_SIZE: a cut keeps whole chunks only


def _parts(reg) -> list:
    tmp = reg.root / "objects" / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


def _gets(hub) -> list:
    """(Range, If-Range) of each GET the server saw."""
    return [(r[2], r[4]) for r in hub.requests if r[0] == "GET"]


def _web(reg):
    return reg.pipeline_root("cap4d") / "data/weights/web.bin"


def _state(reg, key) -> str:
    return reg.json("status")[1]["assets"][key]["state"]


@pytest.mark.parametrize("when", ["next run", "same run"])
def test_url_resume_never_splices_a_changed_remote(reg, hub, when):
    """Without a pinned sha256 only the server's If-Range answer vouches that a resume continues the same file."""
    import os

    old, new = os.urandom(3 * CHUNK), os.urandom(3 * CHUNK)
    if when == "next run":
        f = hub.add("web", "blob.bin", old, cut_first=1, fail_after_cut=True)
        failed = reg("fetch", "web_blob")
        assert failed.exit_code == 1 and "again to resume" in failed.stderr and len(_parts(reg)) == 1
        f.data = new  # the remote changed between the two runs
        hub.heal()
    else:
        hub.add("web", "blob.bin", old, cut_first=1, changed_after_cut=new)  # changed before the client's retry
    hub.requests.clear()
    assert reg("fetch", "web_blob").exit_code == 0
    assert (
        _web(reg).read_bytes() == new and _state(reg, "web_blob") == "unchecked"
    )  # no pin, no validator: present, content unchecked
    assert _parts(reg) == []
    if when == "same run":  # the retry named the first version; the server sent the new one whole
        assert _gets(hub)[1] == (f"bytes={CHUNK}-", f'"{hashlib.sha256(old).hexdigest()}"')


@pytest.mark.parametrize("etag", ["strong", "weak"])
def test_url_body_cut_short_without_length_is_not_placed(reg, hub, etag):
    import os

    data = os.urandom(100_000)
    hub.add("web", "blob.bin", data, no_length=True, cut_first=1, etag=etag)
    failed = reg("fetch", "web_blob")
    assert failed.exit_code == 1 and "Traceback" not in failed.stderr
    assert "ended after 50000 of 100000 bytes" in failed.stderr and f"{hub.url}/files/web/blob.bin" in failed.stderr
    assert not _web(reg).exists() and reg.objects() == [] and _state(reg, "web_blob") == "missing"
    parts = [p.stat().st_size for p in _parts(reg)]
    hub.requests.clear()
    assert reg("fetch", "web_blob").exit_code == 0 and _web(reg).read_bytes() == data
    if etag == "strong":  # kept, and resumed only as far as the server confirms the ETag seen at first
        assert "again to resume" in failed.stderr and parts == [50_000]
        assert _gets(hub) == [("bytes=50000-", f'"{hashlib.sha256(data).hexdigest()}"')]
    else:  # a weak validator cannot vouch for a resume: nothing kept, the next run starts over
        assert "deleted" in failed.stderr and parts == [] and _gets(hub)[0][0] is None


@pytest.mark.parametrize(
    "content_type, page",
    [
        ("text/html; charset=utf-8", b"<!DOCTYPE html>\n<html><body>Sign in to continue</body></html>\n"),
        ("application/octet-stream", b"\n  <HTML><head><title>Error</title></head></HTML>"),
    ],
)
def test_url_answering_a_web_page_is_refused(reg, hub, content_type, page):
    hub.add("web", "blob.bin", page, content_type=content_type)
    result = reg("fetch", "web_blob")
    assert result.exit_code == 1 and "returned a web page" in result.stderr and "login" in result.stderr
    assert f"{hub.url}/files/web/blob.bin" in result.stderr and "reg add FILE --as web_blob" in result.stderr
    assert not _web(reg).exists() and reg.objects() == [] and _parts(reg) == []
    assert _state(reg, "web_blob") == "missing"


def test_url_file_failing_its_validator_is_not_placed(reg, hub):
    import os

    hub.add("web", "model.ckpt", os.urandom(4096))
    code, report = reg.json("fetch", "web_ckpt")
    assert code == 1 and report["failed"][0]["key"] == "web_ckpt"
    assert report["failed"][0]["error"] == "ValidationError" and report["fetched"] == []
    assert not (reg.pipeline_root("cap4d") / "data/weights/web.ckpt").exists()
    assert reg.objects() == [] and _parts(reg) == [] and _state(reg, "web_ckpt") == "missing"


def test_key_with_a_slash_fetches_and_resumes(reg, hub):
    import os

    data = os.urandom(3 * CHUNK)
    hub.add("acme/models", "vendor.bin", data, cut_first=1, fail_after_cut=True)
    failed = reg("fetch", "vendor.blob")
    assert failed.exit_code == 1 and "Run `reg fetch vendor.blob` again to resume" in failed.stderr
    [part] = _parts(reg)  # one file in the temp folder, no folder made from the key
    assert part.is_file() and part.stat().st_size == CHUNK
    hub.heal()
    hub.requests.clear()
    assert reg("fetch", "vendor.blob").exit_code == 0 and _gets(hub)[0][0] == f"bytes={CHUNK}-"
    assert (reg.pipeline_root("cap4d") / "data/weights/vendor.bin").read_bytes() == data
    assert _state(reg, "vendor.blob") == "unchecked" and _parts(reg) == []  # no pin, no validator


def test_partial_longer_than_the_hub_file_starts_over(reg, hub):
    import os

    data = os.urandom(3 * CHUNK)
    hub.add("acme/models", "blob.bin", data, cut_first=1, fail_after_cut=True)
    assert reg("fetch", "demo_blob").exit_code == 1
    [part] = _parts(reg)
    with open(part, "ab") as fh:
        fh.write(os.urandom(3 * CHUNK))  # now longer than the size the Hub states: not a prefix of it
    hub.heal()
    hub.requests.clear()
    assert reg("fetch", "demo_blob").exit_code == 0 and _gets(hub)[0][0] is None
    assert (reg.pipeline_root("cap4d") / "data/weights/blob.bin").read_bytes() == data
    assert _parts(reg) == []


def test_range_not_satisfiable_starts_over(reg, hub):
    import os

    data = os.urandom(100_000)
    f = hub.add("web", "blob.bin", data, no_length=True, cut_first=1)
    assert reg("fetch", "web_blob").exit_code == 1
    [part] = _parts(reg)
    part.write_bytes(os.urandom(150_000))
    f.head_length = False  # no size to compare with: only the server's 416 tells
    hub.requests.clear()
    assert reg("fetch", "web_blob").exit_code == 0 and _web(reg).read_bytes() == data
    assert [g[0] for g in _gets(hub)] == ["bytes=150000-", None] and _parts(reg) == []


def test_restart_discards_the_partial_download(reg, hub):
    import os

    data = os.urandom(3 * CHUNK)
    hub.add("acme/models", "blob.bin", data, cut_first=1, fail_after_cut=True)
    assert reg("fetch", "demo_blob").exit_code == 1 and len(_parts(reg)) == 1
    hub.heal()
    hub.requests.clear()
    assert reg("fetch", "--restart", "demo_blob").exit_code == 0
    assert _gets(hub)[0][0] is None and _parts(reg) == []
    assert (reg.pipeline_root("cap4d") / "data/weights/blob.bin").read_bytes() == data


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_goes_on_past_failures_and_reports_each_key(reg, hub, ckpt):
    hub.add("acme/models", "demo.ckpt", ckpt)
    hub.add("acme/models", "blob.bin", b"blob bytes")
    hub.add("acme/gated", "gated.ckpt", ckpt)
    hub.gated.add("acme/gated")
    assert reg("config", "mirrors.download.pytorch.org", f"http://127.0.0.1:{_closed_port()}").exit_code == 0
    assert reg("fetch", "demo_blob").exit_code == 0
    keys = ["gated_ckpt", "lpips_vgg16", "demo_ckpt", "web_blob", "demo_blob"]
    code, report = reg.json("fetch", *keys)
    assert code == 1
    assert [r["key"] for r in report["fetched"]] == ["demo_ckpt"] and _dest(reg).read_bytes() == ckpt
    assert [r["key"] for r in report["present"]] == ["demo_blob"]
    failed = {f["key"]: f for f in report["failed"]}
    assert list(failed) == ["gated_ckpt", "lpips_vgg16", "web_blob"]
    assert failed["gated_ckpt"]["error"] == "SourceGatedError" and "gated repository" in failed["gated_ckpt"]["message"]
    assert failed["lpips_vgg16"]["error"] == "DownloadError" and "Cannot reach" in failed["lpips_vgg16"]["message"]
    assert "404" in failed["web_blob"]["message"] and failed["web_blob"]["url"] == f"{hub.url}/files/web/blob.bin"
    _, doc = reg.json("status")
    assert doc["assets"]["demo_ckpt"]["state"] == "verified" and doc["assets"]["web_blob"]["state"] == "missing"


def test_missing_goes_on_past_an_unreachable_file_and_says_so(reg, hub, ckpt):
    hub.add("mirror", "download.pytorch.org/models/vgg16-397923af.pth", ckpt)  # cap4d_mmdm (first) is not there
    assert reg("config", "mirrors.download.pytorch.org", f"{hub.url}/files/mirror/download.pytorch.org").exit_code == 0
    result = reg("fetch", "--missing", "--episode", "11", "--version", "v8")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "lpips_vgg16:" in result.stdout and "fetched 1, already there 0, failed 1" in result.stdout
    assert "cap4d_mmdm" in result.stderr and "ftaubner/cap4d" in result.stderr
    _, doc = reg.json("status")
    assert doc["assets"]["lpips_vgg16"]["state"] == "verified" and doc["assets"]["cap4d_mmdm"]["state"] == "missing"
