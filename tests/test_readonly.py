"""Someone else's registry: reading commands work, writing ones say so in a paragraph.

Run as the unprivileged user `nobody` (setpriv) against a registry root owns, with the system
Python reading this environment's site-packages; skipped where that cannot be arranged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import pytest
from conftest import Reg
from factories import write_flame_fixed

SYSTEM_PYTHON = "/usr/bin/python3"


def _as_nobody(root: Path, *args: str) -> subprocess.CompletedProcess:
    code = (
        "import site, sys; site.addsitedir(sys.argv[1]); sys.argv = ['reg', *sys.argv[2:]]; "
        "from reg.cli.main import main; main()"
    )
    return subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            SYSTEM_PYTHON,
            "-c",
            code,
            sysconfig.get_paths()["purelib"],
            "--root",
            str(root),
            *args,
        ],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": "/tmp"},
        timeout=60,
    )


@pytest.fixture
def foreign_registry(monkeypatch):
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("needs root, setpriv and the system Python to act as another user")
    base = Path(tempfile.mkdtemp(prefix="reg-foreign-", dir="/tmp"))
    base.chmod(0o755)
    monkeypatch.setenv("HOME", str(base / "home"))
    reg = Reg(base / "registry", base / "code")
    reg.pipeline_root("cap4d").mkdir(parents=True)
    assert reg("config", "pipelines.cap4d.root", reg.pipeline_root("cap4d")).exit_code == 0
    assert reg("add", write_flame_fixed(base / "flame2023_no_jaw.pkl")).exit_code == 0
    # root's umask leaves files 0644 and folders 0755: readable, not writable, by nobody (a chmod
    # here would move the placements' ctime and make them "changed")
    probe = _as_nobody(reg.root, "--version")
    if probe.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"user nobody cannot run this environment's reg: {probe.stderr.strip()[-200:]}")
    yield reg
    shutil.rmtree(base, ignore_errors=True)


def test_reading_commands_work_on_a_registry_owned_by_someone_else(foreign_registry):
    root = foreign_registry.root
    for _ in range(2):  # twice, as a user would
        status = _as_nobody(root, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["assets"]["flame2023"]["state"] == "verified"
        for args in (["ls"], ["show", "flame2023"], ["verify"]):
            result = _as_nobody(root, *args)
            assert result.returncode == 0 and "Traceback" not in result.stderr, (args, result.stderr)


def test_writing_commands_explain_instead_of_a_traceback(foreign_registry):
    root = foreign_registry.root
    result = _as_nobody(root, "license", "flame", "requested")
    assert result.returncode == 1 and "read-only for you" in result.stderr and "Traceback" not in result.stderr
    result = _as_nobody(root, "config", "media.root", "/tmp")
    assert result.returncode == 1 and "--root" in result.stderr and "Traceback" not in result.stderr
