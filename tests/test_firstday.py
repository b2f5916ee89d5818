"""What a user meets on the first day: each test drives the real CLI twice, as a user would."""

from __future__ import annotations

from pathlib import Path

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


def _blob_pipeline(reg, tmp_path):
    """A one-step pipeline whose only input has no content check (validator none, no sha256)."""
    import sys

    checkout = tmp_path / "blob-checkout"
    checkout.mkdir()
    (reg.root / "manifests").mkdir(parents=True, exist_ok=True)
    (reg.root / "manifests" / "blob.toml").write_text(f"""
[pipelines.blob]
name = "Blob"
root = "{checkout}"
venv = "{sys.prefix}"
requires = ["blob_weights"]
[[pipelines.blob.steps]]
name = "write"
argv = ["{{python}}", "-c", "import sys; open(sys.argv[1], 'w').write('ok')", "{{out}}/result.txt"]
outputs = ["{{out}}/result.txt"]
[assets.blob_weights]
kind = "weights"
pipeline = "blob"
path = "weights/blob.bin"
filenames = ["blob.bin"]
source = {{ url = "http://example.invalid/blob.bin" }}
[episodes.950]
versions.v1 = {{ pipeline = "blob", state = "candidate" }}
""")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"anything at all")
    return blob


def test_status_pipelines_section_names_the_missing_files(reg):
    for _ in range(2):
        out = reg("status").stdout
        line = next(x for x in out.splitlines() if x.strip().startswith("cap4d "))
        assert "needs flame2023 (missing), cap4d_mmdm (missing), lpips_vgg16 (missing)" in line
        assert line.index("needs") < line.index("environment not checked yet")


def test_show_prints_what_a_person_reads(reg, tmp_path):
    for _ in range(2):
        result = reg("show", "flame2023")
        assert result.exit_code == 0
        out = result.stdout
        assert "source: gated: FLAME licence, FLAME2023.zip" in out
        assert "None" not in out and "{'" not in out and "()" not in out
    blob = _blob_pipeline(reg, tmp_path)
    assert reg("add", blob).exit_code == 0
    assert reg("render", "episode", "950", "--version", "v1").exit_code == 0
    out = reg("show", "run", "1").stdout
    assert "None" not in out and "['" not in out
    assert "[write] (cd " in out and "-c 'import sys; open(sys.argv[1], '\"'\"'w'\"'\"').write" in out


def test_ls_header_sizes_and_filters(reg, tmp_path):
    blob = _blob_pipeline(reg, tmp_path)
    assert reg("add", blob).exit_code == 0
    for _ in range(2):
        out = reg("ls").stdout.splitlines()
        assert out[0].split() == ["KEY", "STATE", "KIND", "SIZE", "SOURCE"]
        _, rows = reg.json("ls", "--pipeline", "blob")
        assert [(r["key"], r["size"]) for r in rows] == [("blob_weights", len(b"anything at all"))]
    assert "15 B" in next(x for x in reg("ls").stdout.splitlines() if x.startswith("blob_weights"))
    missing = reg.json("ls", "--missing")[1]
    assert missing and "blob_weights" not in {r["key"] for r in missing}
    assert all(r["state"] == "missing" for r in reg.json("ls", "--state", "missing")[1])
    assert {r["key"] for r in reg.json("ls", "--state", "unchecked")[1]} == {"blob_weights"}
    assert {r["pipeline"] for r in reg.json("ls", "--pipeline", "cap4d", "--missing")[1]} == {"cap4d"}
    bad = reg("ls", "--pipeline", "nope")
    assert bad.exit_code == 1 and "No pipeline 'nope'" in bad.stderr


def test_refused_render_says_why_first_and_all_prints_one_line_each(reg):
    result = reg("render", "episode", "11", "--version", "v8")
    assert result.exit_code == 3
    lines = result.stdout.splitlines()
    assert lines[0].startswith("episode 11 v8: refused: 6 input(s) not ready: flame2023 (missing)")
    assert "step track_reference" not in result.stdout  # the plan is for --dry-run
    dry = reg("render", "episode", "11", "--version", "v8", "--dry-run")
    assert dry.stdout.startswith("episode 11 v8: would be refused") and "step track_reference" in dry.stdout
    for _ in range(2):
        every = reg("render", "--all", "--version", "v8")
        assert every.exit_code == 3
        lines = every.stdout.splitlines()
        assert len(lines) == 15 and lines[-1].startswith("14 episode(s): 14 blocked")
        assert "14 of 14" in every.stderr


def test_refused_render_lists_the_environment_action(reg, tmp_path):
    write_tiny_pipeline(reg.root, tmp_path, "800", {"v1": "candidate"}, binaries='["no-such-binary-xyz"]')
    for _ in range(2):
        out = reg("render", "episode", "800", "--version", "v1").stdout
        assert "To unblock:" in out and " 1. Fix the Tiny environment" in out and "then: reg env tiny" in out


def test_unchecked_content_is_not_called_verified_and_does_not_block(reg, tmp_path):
    blob = _blob_pipeline(reg, tmp_path)
    assert reg("add", blob).exit_code == 0
    for _ in range(2):
        _, doc = reg.json("status")
        assert doc["assets"]["blob_weights"]["state"] == "unchecked"
        assert doc["summary"]["unchecked"] == 1 and doc["summary"]["verified"] == 0
        assert "1 present, content unchecked" in reg("status").stdout
    result = reg("render", "episode", "950", "--version", "v1")
    assert result.exit_code == 0, result.output
    assert "warning: blob_weights is present but its content is unchecked" in result.stdout
    run = reg.json("show", "run", "1")[1]
    assert run["environment"]["unchecked_inputs"] == ["blob_weights"]


def test_rm_unplaces_and_forgets_and_gc_then_frees_the_object(reg, tmp_path):
    blob = _blob_pipeline(reg, tmp_path)
    assert reg("add", blob, "--link", "symlink").exit_code == 0
    placed = tmp_path / "blob-checkout" / "weights" / "blob.bin"
    assert placed.is_symlink()
    code, dry = reg.json("gc", "--dry-run")
    assert code == 0 and dry["objects"] == []  # placed: referenced
    code, out = reg.json("rm", "blob_weights")
    assert code == 0 and out["unplaced"] and not placed.exists()
    again = reg("rm", "blob_weights")
    assert again.exit_code == 1 and "not registered on this machine" in again.stderr
    assert reg.json("ls", "--pipeline", "blob")[1][0]["state"] == "missing"
    for _ in range(2):
        listing = reg("gc", "--dry-run")
        assert (
            listing.exit_code == 0 and "1 unreferenced object(s), 0 stale stage(s); would free 15 B" in listing.stdout
        )
    assert len(reg.objects()) == 1
    assert "freed 15 B" in reg("gc").stdout
    assert reg.objects() == [] and reg.json("gc")[1]["objects"] == []


def test_gc_keeps_what_runs_used(reg, tmp_path):
    write_tiny_pipeline(reg.root, tmp_path, "700", {"v7": "production", "v8": "candidate"})
    assert reg("render", "episode", "700", "--version", "v8").exit_code == 0
    assert reg.json("gc", "--dry-run")[1]["objects"] == []
    assert reg("gc").exit_code == 0 and len(reg.objects()) == 1  # the run's output stays


def test_status_episode_filter_and_store_size(reg, tmp_path):
    blob = _blob_pipeline(reg, tmp_path)
    assert reg("add", blob).exit_code == 0
    for _ in range(2):
        code, doc = reg.json("status", "--episode", "11")
        assert code == 0 and {v["episode"] for v in doc["versions"]} == {"11"}
        assert all(any(u["episode"] == "11" for u in a["unblocks"]) for a in doc["owner_actions"])
        assert doc["summary"]["store_bytes"] == 15 and doc["summary"]["store_objects"] == 1
    text = reg("status", "--episode", "11").stdout.splitlines()
    assert text[2] == "store: 1 object(s), 15 B"
    assert text[4] == "Blocked:" and text[5].startswith("  episode 11 v7")
    bad = reg("status", "--episode", "999")
    assert bad.exit_code == 1 and "No episode 999" in bad.stderr


def test_shell_completion_of_keys_and_episodes(reg):
    import os
    import subprocess
    import sys

    env = {**os.environ, "_REG_COMPLETE": "bash_complete", "COMP_WORDS": "reg show flame20", "COMP_CWORD": "2"}
    env["REG_HOME"] = str(reg.root)
    for _ in range(2):
        out = subprocess.run([str(Path(sys.executable).parent / "reg")], env=env, capture_output=True, text=True).stdout
        assert "plain,flame2023" in out and "plain,flame2020" in out
    env.update(COMP_WORDS="reg versions episode 1", COMP_CWORD="3")
    out = subprocess.run([str(Path(sys.executable).parent / "reg")], env=env, capture_output=True, text=True).stdout
    assert "plain,11" in out and "plain,1\n" in out


def test_quiet_and_verbose_flags(reg, tmp_path):
    blob = _blob_pipeline(reg, tmp_path)
    quiet_add = reg("-q", "add", blob)
    assert quiet_add.exit_code == 0 and len(quiet_add.stdout.splitlines()) == 1  # key sha256 path: data only
    for _ in range(2):
        assert reg("-q", "verify").stdout == ""
        assert "1 verified, 0 not" in reg("verify").stdout
    out = reg("-v", "render", "--all", "--version", "v8").stdout
    assert "step track_reference" in out  # -v: every episode in full


def test_verify_wording_for_a_missing_file(reg, tmp_path):
    blob = _blob_pipeline(reg, tmp_path)
    assert reg("add", blob).exit_code == 0
    (tmp_path / "blob-checkout" / "weights" / "blob.bin").unlink()
    for _ in range(2):
        result = reg("verify")
        assert result.exit_code == 1
        line = next(x for x in result.stdout.splitlines() if x.startswith("missing"))
        assert "stat unchanged" not in line and line.endswith("blob.bin is gone")
        assert "1 placed file(s) changed or missing: blob_weights" in result.stderr


def test_help_summaries_fit_one_line(reg):
    out = reg("--help").stdout
    commands = out[out.index("Commands:") :].splitlines()[1:]
    assert commands and all(line.startswith("  ") and not line.startswith("   ") for line in commands)
    assert not any(line.rstrip().endswith("...") for line in commands)


def test_file_from_another_registry_is_named_as_not_in_this_one(reg, tmp_path):
    blob = _blob_pipeline(reg, tmp_path)
    assert reg("add", blob, "--link", "copy").exit_code == 0
    other = reg.__class__(tmp_path / "other-registry", reg.home)
    (other.root / "manifests").mkdir(parents=True)
    (other.root / "manifests" / "blob.toml").write_text((reg.root / "manifests" / "blob.toml").read_text())
    for _ in range(2):
        out = other("status", "--episode", "950").stdout
        assert "a file is at its path but not in this registry" in out
        assert f"is not registered in this registry ({other.root})" in out


def test_status_strict_and_env_exit_codes_with_json(reg):
    result = reg("status", "--strict", "--json")
    assert result.exit_code == 3
    import json

    assert json.loads(result.stdout)["schema"] == "reg.status/1"  # one document; the error goes to stderr
    assert "blocked (--strict)" in result.stderr


def test_demo_runs_as_the_readme_says(reg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, out = reg.json("demo")
        assert code == 0 and out["checkout"].startswith(str(reg.root))
    refused = reg("render", "episode", "100", "--version", "v1")
    assert refused.exit_code == 3 and refused.stdout.startswith("episode 100 v1: refused: 2 input(s) not ready")
    (tmp_path / "demo.bin").write_bytes(b"demo weights")
    assert reg("add", tmp_path / "demo.bin").exit_code == 0
    (tmp_path / "narration.wav").write_bytes(b"RIFF\0\0\0\0WAVEdemo")
    assert reg("add", tmp_path / "narration.wav", "--as", "demo100.audio").exit_code == 0
    ran = reg("render", "episode", "100", "--version", "v1")
    assert ran.exit_code == 0, ran.output
    assert "frame 5/5" in ran.stdout and "succeeded" in ran.stdout
    assert reg("runs").exit_code == 0 and reg("show", "run", "1").exit_code == 0
    assert "frame 5/5" in reg("log", "1").stdout
    assert not list((Path(__file__).resolve().parents[1] / "runner" / "demo_pipeline").glob("weights"))
