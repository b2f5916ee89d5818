"""Races and kills: many processes at once and kill -9 at awkward moments never leave a lie behind.

Real processes (`python -m reg`), a real SQLite file. After each fault the invariants a user relies
on are checked the way a user would: `reg verify --store` (every object matches its name),
`reg verify` (every row's placement is there and unchanged), a clean `reg status`, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from factories import write_flame_fixed


def _reg(root: Path, *args: str, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "reg", "--root", str(root), *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _all(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    return [(p.wait(timeout=120), *p.communicate()) for p in procs]


def assert_registry_tells_the_truth(reg) -> None:
    code, problems = reg.json("verify", "--store")
    assert code == 0 and [p for p in problems if p["problem"] != "unrecorded"] == [], problems
    code, results = reg.json("verify")
    assert code == 0 and all(r["state"] == "verified" for r in results), results
    assert reg("status").exit_code == 0


def test_sixteen_first_commands_on_a_new_registry_all_succeed(tmp_path):
    root = tmp_path / "fresh"
    outcomes = _all([_reg(root, "status", "--json") for _ in range(16)])
    assert [code for code, _, _ in outcomes] == [0] * 16, [err for _, _, err in outcomes if err][:2]
    assert not any("Traceback" in err for _, _, err in outcomes)


def test_sixteen_processes_adding_the_same_bytes_at_once(reg, tmp_path):
    src = write_flame_fixed(tmp_path / "a" / "flame2023_no_jaw.pkl")
    twin = tmp_path / "b" / "generic_model.pkl"  # the same bytes under another key (flame2020)
    twin.parent.mkdir()
    twin.write_bytes(src.read_bytes())
    procs = [_reg(reg.root, "add", src if i % 2 else twin) for i in range(16)]
    outcomes = _all(procs)
    assert not any("Traceback" in err for _, _, err in outcomes), [e for _, _, e in outcomes if e][:1]
    assert [code for code, _, _ in outcomes] == [0] * 16, [e for _, _, e in outcomes if e][:2]
    _, doc = reg.json("status")
    assert doc["assets"]["flame2023"]["state"] == doc["assets"]["flame2020"]["state"] == "verified"
    assert len(reg.objects()) == 1
    assert_registry_tells_the_truth(reg)


def test_kill_9_in_the_middle_of_an_add_leaves_no_lie_and_gc_cleans_the_stage(reg, tmp_path):
    big = tmp_path / "flame2023_no_jaw.pkl"
    write_flame_fixed(big)
    with open(big, "ab") as f:  # make it big enough to be caught mid-copy (the validator is not reached)
        f.write(os.urandom(64 << 20))
    proc = _reg(reg.root, "add", big)
    tmp = reg.root / "objects" / "tmp"
    end = time.monotonic() + 20
    while time.monotonic() < end and not (tmp.is_dir() and any(tmp.iterdir())):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_registry_tells_the_truth(reg)
    _, doc = reg.json("status")
    assert doc["assets"]["flame2023"]["state"] in ("missing", "verified")
    code, report = reg.json("gc")
    assert code == 0 and not (tmp.is_dir() and any(p.name.startswith("stage-") for p in tmp.iterdir()))
    assert_registry_tells_the_truth(reg)


def test_re_adding_the_placed_file_is_not_called_adopted(reg, tmp_path, flame_dest):
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")
    assert reg("add", src).exit_code == 0
    again = reg("add", flame_dest)  # the placed copy itself
    assert again.exit_code == 0
    show = reg("show", "flame2023").stdout
    assert "re-added" in show and "adopted" not in show
    code, results = reg.json("verify")
    assert code == 0 and results[0]["state"] == "verified"
