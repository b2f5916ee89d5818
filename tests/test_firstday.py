"""What a user meets on the first day: each test drives the real CLI twice, as a user would."""

from __future__ import annotations

from factories import write_tiny_pipeline


def _states(reg, episode="700") -> dict[str, str]:
    return {r["version"]: r["state"] for r in reg.json("versions", "episode", episode)[1]["versions"]}


def test_promote_refuses_an_unrendered_version_without_force_and_note(reg, tmp_path):
    write_tiny_pipeline(reg.root, tmp_path, "700", {"v7": "production", "v8": "candidate"})
    for _ in range(2):
        result = reg("promote", "episode", "700", "v8")
        assert result.exit_code == 3
        assert "no successful render" in result.stderr and "--force --note" in result.stderr
        assert "Traceback" not in result.output
    assert reg("promote", "episode", "700", "v8", "--force").exit_code == 1  # a note is required
    assert _states(reg) == {"v7": "production", "v8": "candidate"}
    code, out = reg.json("promote", "episode", "700", "v8", "--force", "--note", "approved by the director")
    assert code == 0 and out["changes"] == {"v7": "previous", "v8": "production"}
    assert out["entry"]["forced"] is True and out["entry"]["note"] == "approved by the director"


def test_promote_and_back_restores_every_state_and_keeps_history(reg, tmp_path):
    write_tiny_pipeline(reg.root, tmp_path, "700", {"v7": "production", "v8": "candidate"})
    assert reg("render", "episode", "700", "--version", "v8").exit_code == 0
    for _ in range(2):  # the second promotion changes nothing
        assert reg("promote", "episode", "700", "v8").exit_code == 0
    assert "already in production" in reg("promote", "episode", "700", "v8").stdout
    assert _states(reg) == {"v7": "previous", "v8": "production"}
    out = reg("promote", "episode", "700", "v7", "--note", "lip sync drifts")
    assert out.exit_code == 0, out.output
    assert _states(reg) == {"v7": "production", "v8": "candidate"}
    code, doc = reg.json("versions", "episode", "700")
    assert code == 0
    assert [(h["action"], h["version"], h["from"]) for h in doc["history"]] == [
        ("promote", "v8", "v7"),
        ("promote", "v7", "v8"),
    ]
    assert doc["history"][1]["note"] == "lip sync drifts" and doc["history"][0]["at"]
    text = reg("versions", "episode", "700").stdout
    assert "production history:" in text and "promote v7 (was v8)  (lip sync drifts)" in text


def test_rollback_puts_back_the_replaced_version(reg, tmp_path):
    write_tiny_pipeline(reg.root, tmp_path, "700", {"v7": "production", "v8": "candidate"})
    first = reg("rollback", "episode", "700")
    assert first.exit_code == 1 and "no promotion" in first.stderr
    assert reg("render", "episode", "700", "--version", "v8").exit_code == 0
    assert reg("promote", "episode", "700", "v8").exit_code == 0
    code, out = reg.json("rollback", "episode", "700", "--note", "bad render")
    assert code == 0 and out["action"] == "rollback" and out["changes"] == {"v7": "production", "v8": "candidate"}
    again = reg("rollback", "episode", "700")
    assert again.exit_code == 1 and "no promotion" in again.stderr  # v7's production came from the manifest
    assert _states(reg) == {"v7": "production", "v8": "candidate"}
    history = reg.json("versions", "episode", "700")[1]["history"]
    assert [h["action"] for h in history] == ["promote", "rollback"]


def test_log_json(reg, tmp_path):
    write_tiny_pipeline(reg.root, tmp_path, "700", {"v7": "production", "v8": "candidate"})
    assert reg("render", "episode", "700", "--version", "v8").exit_code == 0
    for _ in range(2):
        code, doc = reg.json("log", "1")
        assert code == 0 and doc["run"] == 1 and doc["state"] == "succeeded" and "$ " in doc["log"]


def test_add_refuses_a_checkout_not_cloned_yet_and_git_clone_then_works(reg, tmp_path):
    import subprocess

    from factories import write_flame_downloaded

    checkout = tmp_path / "later" / "cap4d"
    assert reg("config", "pipelines.cap4d.root", checkout).exit_code == 0
    pkl = write_flame_downloaded(tmp_path / "dl" / "flame2023_no_jaw.pkl")
    for _ in range(2):
        result = reg("add", pkl)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"git clone https://github.com/felixtaubner/cap4d {checkout}" in result.stderr
        assert "Nothing was stored" in result.stderr
    assert not checkout.exists() and reg.objects() == []
    bare = tmp_path / "cap4d.git"
    subprocess.run(["git", "init", "-q", "--bare", bare], check=True)
    subprocess.run(["git", "clone", "-q", bare, checkout], check=True, capture_output=True)
    assert reg("add", pkl).exit_code == 0
    assert (checkout / "data/assets/flame/flame2023_no_jaw.pkl").is_file()
    assert reg("add", pkl).exit_code == 0  # twice: the same file again is fine
