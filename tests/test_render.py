"""The render runner with a small real pipeline: its own virtualenv, real subprocesses, real files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factories import write_tiny_pipeline

TOY = Path(__file__).resolve().parents[1] / "runner" / "demo_pipeline"  # the README demo pipeline


@pytest.fixture(scope="session")
def toy_venv(tmp_path_factory) -> Path:
    """The pipeline's own virtualenv (no pip: the toy needs only the standard library)."""
    venv = tmp_path_factory.mktemp("toy") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv


def _manifest(checkout: Path, venv: Path, marker: Path) -> str:
    episodes = ""
    for ep, fail in (("901", "no"), ("902", "yes")):
        episodes += f'''
[assets."toy{ep}.audio"]
kind = "media"
path = "toy/{ep}/audio.wav"
validator = "wav"
source = {{ owner = "audio" }}

[episodes.{ep}]
inputs = {{ audio = "toy{ep}.audio" }}
versions.v1 = {{ pipeline = "toy", state = "candidate", params = {{ frames = "3", sleep = "0", fail = "{fail}" }} }}
versions.v2 = {{ pipeline = "toy", state = "planned", params = {{ frames = "2", sleep = "0", fail = "no" }} }}
versions.slow = {{ pipeline = "toy", state = "planned", params = {{ frames = "100", sleep = "0.2", fail = "no" }} }}
'''
    return (
        f'''
[pipelines.toy]
name = "Toy pipeline"
root = "{checkout}"
venv = "{venv}"
requires = ["toy_weights"]

[[pipelines.toy.steps]]
name = "prepare"
argv = ["{{python}}", "-c", "import pathlib; pathlib.Path('{marker}').write_text('launched')"]

[[pipelines.toy.steps]]
name = "render"
argv = ["{{python}}", "render.py", "--weights", "{{asset.toy_weights}}", "--audio", "{{input.audio}}",
        "--out", "{{out}}/episode.txt", "--frames", "{{param.frames}}", "--sleep", "{{param.sleep}}",
        "--fail", "{{param.fail}}", "--pidfile", "{{run}}/child.pid"]
reads = ["toy_weights", "input.audio"]
outputs = ["{{out}}/episode.txt"]

[assets.toy_weights]
kind = "weights"
pipeline = "toy"
path = "weights/model.bin"
source = {{ url = "http://example.invalid/model.bin" }}
'''
        + episodes
    )


@pytest.fixture
def toy(reg, tmp_path, toy_venv):
    checkout = tmp_path / "toy-checkout"
    checkout.mkdir()
    (checkout / "render.py").write_text((TOY / "render.py").read_text())
    marker = tmp_path / "launched"
    (reg.root / "manifests").mkdir(parents=True, exist_ok=True)
    (reg.root / "manifests" / "toy.toml").write_text(_manifest(checkout, toy_venv, marker))
    reg.marker = marker
    reg.checkout = checkout
    return reg


def _add_inputs(reg, tmp_path, episodes=("901", "902"), link="symlink"):
    weights = tmp_path / "in" / "model.bin"
    weights.parent.mkdir(exist_ok=True)
    weights.write_bytes(b"weights v1")
    assert reg("add", weights, "--as", "toy_weights", "--link", link).exit_code == 0
    for ep in episodes:
        audio = tmp_path / "in" / f"{ep}.wav"
        audio.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + ep.encode())
        assert reg("add", audio, "--as", f"toy{ep}.audio").exit_code == 0
    return weights


def _runs(reg, *args):
    return reg.json("runs", *args)[1]


def _reg_process(reg, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "reg", "--root", str(reg.root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a reaper that may not exist in a container."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _child_pid(reg) -> int:
    run = _runs(reg)[-1]
    pidfile = Path(reg.json("show", "run", str(run["id"]))[1]["run_dir"]) / "child.pid"
    _wait_for(lambda: pidfile.exists() and pidfile.read_text())
    return int(pidfile.read_text())


def test_refused_when_an_input_is_missing(toy, tmp_path):
    result = toy("render", "episode", "901", "--version", "v1")
    assert result.exit_code == 3
    assert "toy_weights" in result.stdout and "refused" in result.stdout and "reg fetch toy_weights" in result.stdout
    assert not toy.marker.exists() and _runs(toy) == [] and not (toy.root / "runs").exists()


def test_refused_when_an_input_changed_since_verification(toy, tmp_path):
    _add_inputs(toy, tmp_path, link="copy")
    placed = toy.checkout / "weights" / "model.bin"
    placed.write_bytes(b"weights v2")  # same size, new bytes and mtime
    result = toy("render", "episode", "901", "--version", "v1")
    assert result.exit_code == 3 and "changed" in result.stdout and "reg verify toy_weights" in result.stdout
    assert not toy.marker.exists() and _runs(toy) == []


def test_successful_render_is_recorded_with_logs_hashes_and_outputs(toy, tmp_path, toy_venv):
    _add_inputs(toy, tmp_path)
    result = toy("render", "episode", "901", "--version", "v1")
    assert result.exit_code == 0, result.output
    assert "frame 3/3" in result.stdout and "succeeded" in result.stdout
    run = _runs(toy)[0]
    assert run["state"] == "succeeded" and run["exit_code"] == 0
    code, record = toy.json("show", "run", str(run["id"]))
    weights_sha = toy.json("show", "toy_weights")[1]["record"]["sha256"]
    assert record["inputs"]["toy_weights"] == weights_sha
    assert record["commands"][1]["argv"][0] == str(toy_venv / "bin" / "python")
    assert record["environment"]["executable"].startswith(str(toy_venv))
    out_sha = record["outputs"]["episode.txt"]
    stored = toy.root / "objects" / "sha256" / out_sha[:2] / out_sha[2:]
    assert stored.read_text().startswith("rendered 3 frames")
    log = toy("log", str(run["id"]))
    assert "frame 2/3" in log.stdout and "$ " in log.stdout


def test_failing_step_records_exit_code_and_log_tail(toy, tmp_path):
    _add_inputs(toy, tmp_path)
    result = toy("render", "episode", "902", "--version", "v1")
    assert result.exit_code == 4 and "exited with 2" in result.stdout
    run = _runs(toy)[0]
    assert run["state"] == "failed" and run["exit_code"] == 2
    record = toy.json("show", "run", str(run["id"]))[1]
    assert "CUDA out of memory" in record["error"] and record["outputs"] == {}


def test_timeout_stops_the_process_group(toy, tmp_path):
    _add_inputs(toy, tmp_path)
    result = toy("render", "episode", "901", "--version", "slow", "--timeout", "1.5")
    assert result.exit_code == 4 and "timed out" in result.stdout
    run = _runs(toy)[0]
    assert run["state"] == "timed-out"
    pid = int((Path(toy.json("show", "run", str(run["id"]))[1]["run_dir"]) / "child.pid").read_text())
    assert not _alive(pid)


def test_sigterm_cancels_and_records(toy, tmp_path):
    _add_inputs(toy, tmp_path)
    proc = _reg_process(toy, "render", "episode", "901", "--version", "slow")
    _wait_for(lambda: _runs(toy) != [])
    child = _child_pid(toy)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 4
    assert _runs(toy)[0]["state"] == "cancelled"
    _wait_for(lambda: not _alive(child))


def test_second_concurrent_render_is_refused(toy, tmp_path):
    _add_inputs(toy, tmp_path)
    proc = _reg_process(toy, "render", "episode", "901", "--version", "slow")
    try:
        _wait_for(lambda: _runs(toy) != [])
        second = toy("render", "episode", "901", "--version", "slow", "--force")
        assert second.exit_code == 1 and "already rendering" in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_vanished_run_is_marked_lost_and_releases_the_lock(toy, tmp_path):
    _add_inputs(toy, tmp_path)
    proc = _reg_process(toy, "render", "episode", "901", "--version", "slow")
    _wait_for(lambda: _runs(toy) != [])
    child = _child_pid(toy)
    proc.kill()  # kill -9: no chance to record anything
    proc.wait()
    _wait_for(lambda: not _alive(child), timeout=10)  # the step dies with reg, not orphaned
    assert _runs(toy)[0]["state"] == "lost"
    assert toy("render", "episode", "901", "--version", "v2").exit_code == 0


def test_up_to_date_render_is_skipped_unless_forced(toy, tmp_path):
    _add_inputs(toy, tmp_path)
    assert toy("render", "episode", "901", "--version", "v1").exit_code == 0
    again = toy("render", "episode", "901", "--version", "v1")
    assert again.exit_code == 0 and "up to date" in again.stdout and len(_runs(toy)) == 1
    forced = toy("render", "episode", "901", "--version", "v1", "--force")
    assert forced.exit_code == 0 and len(_runs(toy)) == 2


def test_render_all_continues_past_a_failure_and_resumes(toy, tmp_path):
    _add_inputs(toy, tmp_path)
    result = toy("render", "--all", "--version", "v1")
    assert result.exit_code == 4
    assert [(r["episode"], r["state"]) for r in _runs(toy)] == [("901", "succeeded"), ("902", "failed")]
    assert "episode 901 v1: succeeded (run 1" in result.stdout and "episode 902 v1: failed (run 2" in result.stdout
    again = toy("render", "--all", "--version", "v1")
    assert "episode 901 v1: up to date (run 1)" in again.stdout and len(_runs(toy)) == 3


def test_promote_keeps_the_old_production_as_previous(toy, tmp_path):
    _add_inputs(toy, tmp_path)
    assert toy("render", "episode", "901", "--version", "v2").exit_code == 0
    assert toy("promote", "episode", "901", "v1", "--force", "--note", "as the manifest says").exit_code == 0
    out = toy("promote", "episode", "901", "v2")
    assert "901 v1: previous" in out.stdout and "901 v2: production" in out.stdout
    rows = {r["version"]: r for r in toy.json("versions", "episode", "901")[1]["versions"]}
    assert rows["v2"]["state"] == "production" and rows["v1"]["state"] == "previous"
    assert rows["v2"]["last_run"]["state"] == "succeeded"
    _, doc = toy.json("status")
    assert {(v["episode"], v["version"]) for v in doc["production"]} >= {("901", "v2")}


def test_shipped_v8_dry_run_shows_cap4d_commands_and_the_flame_blocker(reg):
    result = reg("render", "episode", "11", "--version", "v8", "--dry-run")
    assert result.exit_code == 3
    out = result.stdout
    assert "cap4d/inference/generate_images.py" in out and "gaussianavatars/train.py" in out
    assert "gaussianavatars/animate.py" in out and "Register for FLAME" in out and "reg add FLAME2023.zip" in out
    assert _runs(reg) == []


def test_dry_run_of_a_ready_version_runs_nothing(toy, tmp_path):
    _add_inputs(toy, tmp_path)
    (code,) = [toy("render", "episode", "901", "--version", "v1", "--dry-run").exit_code]
    assert code == 0 and not toy.marker.exists() and _runs(toy) == []
    events = [
        json.loads(line) for line in toy("render", "episode", "901", "--version", "v1", "--json").stdout.splitlines()
    ]
    assert [e["event"] for e in events][0] == "gate" and events[-1]["state"] == "succeeded"


def test_missing_checkout_or_venv_refuses_before_launch(toy, tmp_path):
    _add_inputs(toy, tmp_path)
    assert toy("config", "pipelines.toy.root", tmp_path / "nowhere").exit_code == 0
    result = toy("render", "episode", "901", "--version", "v1")
    assert result.exit_code == 3 and "checkout" in result.stdout and "reg config pipelines.toy.root" in result.stdout
    assert _runs(toy) == [] and not toy.marker.exists()


def test_log_follow_streams_until_the_run_ends(toy, tmp_path):
    _add_inputs(toy, tmp_path)
    render = _reg_process(toy, "render", "episode", "901", "--version", "slow", "--timeout", "3")
    try:
        _wait_for(lambda: _runs(toy) != [])
        run_id = str(_runs(toy)[0]["id"])
        _wait_for(lambda: (Path(toy.json("show", "run", run_id)[1]["run_dir"]) / "log.txt").exists())
        follower = _reg_process(toy, "log", run_id, "--follow")
        out, _ = follower.communicate(timeout=30)  # returns only once the render has ended
        assert follower.returncode == 0 and "frame 1/100" in out
        assert _runs(toy)[0]["state"] == "timed-out"
    finally:
        render.wait(timeout=30)


@pytest.mark.gpu
def test_render_on_a_gpu_machine_records_the_gpu(toy, tmp_path):
    import shutil

    if shutil.which("nvidia-smi") is None:
        pytest.skip("no NVIDIA GPU here (nvidia-smi not found)")
    _add_inputs(toy, tmp_path)
    assert toy("render", "episode", "901", "--version", "v1").exit_code == 0
    run = _runs(toy)[0]
    env = toy.json("show", "run", str(run["id"]))[1]["environment"]
    assert env["gpus"] and "NVIDIA" in env["gpus"][0]


def _tiny(reg, tmp_path, packages: str, binaries: str) -> None:
    write_tiny_pipeline(reg.root, tmp_path, "800", {"v1": "candidate"}, packages, binaries)


def test_gate_checks_declared_packages_and_binaries(reg, tmp_path):
    _tiny(
        reg,
        tmp_path,
        '{ click = ">=8", "Not-Installed_Pkg" = ">=1", SQLAlchemy = "<2" }',
        '["sh", "no-such-binary-xyz"]',
    )
    result = reg("render", "episode", "800", "--version", "v1")
    assert result.exit_code == 3 and _runs(reg) == []
    out = result.stdout
    assert "Not-Installed_Pkg is not installed" in out and "install 'Not-Installed_Pkg>=1'" in out
    assert "needs SQLAlchemy<2" in out and "no-such-binary-xyz is not on PATH" in out
    assert out.startswith("episode 800 v1: refused: 3 environment problem(s).")  # the reason first
    problems = [line for line in out.splitlines() if line.strip().startswith("- ") and "checked " not in line]
    assert len(problems) == 3 and not any("click" in line for line in problems)


def test_satisfied_environment_is_recorded_with_the_run(reg, tmp_path):
    _tiny(reg, tmp_path, '{ click = ">=8", sqlalchemy = ">=2" }', '["sh"]')
    assert reg("render", "episode", "800", "--version", "v1").exit_code == 0
    run = _runs(reg)[0]
    env = reg.json("show", "run", str(run["id"]))[1]["environment"]
    assert env["executable"].startswith(sys.prefix) and "click" in {k.lower() for k in env["packages"]}


def test_env_command_and_status_show_environment_problems(reg, tmp_path):
    _tiny(reg, tmp_path, '{ "Not-Installed_Pkg" = ">=1" }', "[]")
    _, doc = reg.json("status")
    tiny = next(p for p in doc["pipelines"] if p["key"] == "tiny")
    assert tiny["environment"]["last_check"] is None and tiny["ready"]  # unknown is not a blocker
    code, report = reg.json("env", "tiny")
    assert code == 3 and not report["tiny"]["ok"] and "Not-Installed_Pkg" in report["tiny"]["problems"][0]
    _, doc = reg.json("status")
    action = next(a for a in doc["owner_actions"] if a["id"] == "environment:tiny")
    assert "Not-Installed_Pkg" in action["steps"][0] and action["commands"] == ["reg env tiny"]
    v1 = next(v for v in doc["versions"] if (v["episode"], v["version"]) == ("800", "v1"))
    assert not v1["ready"] and v1["blockers"] == [{"asset": None, "state": "environment", "action": "environment:tiny"}]
    _tiny(reg, tmp_path, '{ click = ">=8" }', "[]")
    assert reg("env", "tiny").exit_code == 0
    _, doc = reg.json("status")
    assert next(v for v in doc["versions"] if v["episode"] == "800")["ready"]
