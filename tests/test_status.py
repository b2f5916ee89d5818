"""`reg status` on a fresh registry: what blocks what, and the owner's exact actions."""

import sqlite3
from datetime import UTC, datetime, timedelta

from factories import write_flame_downloaded


def test_fresh_status_text_names_flame_and_bfm_owner_actions(reg):
    result = reg("status")
    assert result.exit_code == 0
    out = result.stdout
    assert "Register for FLAME" in out and "https://flame.is.tue.mpg.de/" in out
    assert "reg add FLAME2023.zip" in out
    assert "Register for Basel Face Model 2009" in out and "faces.dmi.unibas.ch" in out
    assert "-> unblocks episode 11 v8 and the 13 other v8 renders" in out
    assert "episode 11 v8 (cap4d, candidate): flame2023" in out
    assert "In production: episode 11 v7 (latentsync" in out


def test_fresh_status_json_is_one_stable_document(reg):
    code, doc = reg.json("status")
    assert code == 0 and doc["schema"] == "reg.status/1"
    flame = next(a for a in doc["owner_actions"] if a["id"] == "licence:flame")
    assert set(flame["assets"]) == {"flame2023", "flame2020"}
    assert {"episode": "11", "version": "v8"} in flame["unblocks"]
    assert len([u for u in flame["unblocks"] if u["version"] == "v8"]) == 14
    assert flame["licence"]["state"] == "not-requested"
    bfm = next(a for a in doc["owner_actions"] if a["id"] == "licence:bfm2009")
    assert bfm["pipelines"] == ["talkinggaussian"]
    tg = next(p for p in doc["pipelines"] if p["key"] == "talkinggaussian")
    assert not tg["ready"] and {"asset": "bfm2009", "state": "missing", "action": "licence:bfm2009"} in tg["blockers"]
    v8 = next(v for v in doc["versions"] if (v["episode"], v["version"]) == ("11", "v8"))
    assert not v8["ready"] and "flame2023" in [b["asset"] for b in v8["blockers"]]
    fetches = {a["id"] for a in doc["machine_actions"]}
    assert "fetch:cap4d_mmdm" in fetches  # open weights are a machine action, not the owner's
    assert doc["production"][0]["version"] == "v7"


def test_strict_exits_3_when_anything_is_blocked(reg):
    assert reg("status", "--strict").exit_code == 3
    assert reg("status").exit_code == 0


def test_licence_request_shows_days_waiting(reg):
    result = reg("license", "flame2023", "requested", "--note", "form sent")
    assert result.exit_code == 0 and "requested (form sent)" in result.stdout
    db = sqlite3.connect(reg.root / "reg.db")
    db.execute(
        "UPDATE licence_records SET requested_at = ? WHERE key = 'flame'",
        ((datetime.now(UTC).replace(tzinfo=None) - timedelta(days=3)).isoformat(sep=" "),),
    )
    db.commit()
    code, doc = reg.json("status")
    flame = next(a for a in doc["owner_actions"] if a["id"] == "licence:flame")
    assert flame["title"].startswith("Wait for FLAME") and flame["licence"]["days_waiting"] == 3
    assert "requested 3 days ago" in reg("status").stdout
    history = reg("show", "flame").stdout
    assert "licence requested" in history and "form sent" in history


def test_licence_changes_twice_in_a_row_as_status_suggests(reg):
    """The second change used to crash reading a row after its session closed."""
    assert reg("license", "flame", "requested", "--note", "form sent").exit_code == 0
    second = reg("license", "flame", "approved")
    assert second.exit_code == 0 and "approved" in second.stdout and "form sent" in second.stdout
    code, doc = reg.json("license", "flame", "requested")
    assert code == 0 and doc["state"] == "requested" and doc["note"] == "form sent"
    _, doc = reg.json("status")
    flame = next(a for a in doc["owner_actions"] if a["id"] == "licence:flame")
    assert flame["licence"]["state"] == "requested" and "requested today" in reg("status").stdout


def test_file_copied_by_hand_is_present_but_unverified(reg, flame_dest):
    write_flame_downloaded(flame_dest)
    code, doc = reg.json("status")
    assert doc["assets"]["flame2023"]["state"] == "unverified"
    adopt = next(a for a in doc["machine_actions"] if a["id"] == "adopt:flame2023")
    assert adopt["commands"] == [f"reg add {flame_dest}"]


def test_unknown_licence_key_is_a_clear_error(reg):
    result = reg("license", "flam", "requested")
    assert result.exit_code == 1 and "No licence named 'flam'" in result.stderr and "Traceback" not in result.stderr


def test_config_list_when_empty_and_a_path_not_there_yet(reg, tmp_path):
    fresh = reg("--root", str(tmp_path / "other"), "config", "--list")
    assert fresh.exit_code == 0 and "no settings on this machine" in fresh.stdout
    later = reg("config", "pipelines.cap4d.root", tmp_path / "not-cloned-yet")
    assert later.exit_code == 0 and "does not exist yet" in later.stderr
    assert reg.json("config", "pipelines.cap4d.root")[1]["value"] == str(tmp_path / "not-cloned-yet")
