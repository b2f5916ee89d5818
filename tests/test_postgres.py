"""The same registry on a real PostgreSQL server (REG_DATABASE_URL), started by these tests.

The server binaries come from the machine (Debian's postgresql; `.ci/run` installs it when absent).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid

import pytest
from factories import write_flame_fixed, write_tiny_pipeline


def _pg_bindir() -> str | None:
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(found)
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return dirs[-1] if dirs else None


@pytest.fixture(scope="session")
def postgres_server():
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed (.ci/run installs Debian's postgresql)")
    base = tempfile.mkdtemp(prefix="reg-pg-", dir="/tmp")
    os.chmod(base, 0o755)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(base, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(base, "data")
    subprocess.run(
        [*as_postgres, f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "reg"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [
            *as_postgres,
            f"{bindir}/pg_ctl",
            "-D",
            data,
            "-w",
            "-l",
            os.path.join(base, "log"),
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    yield f"postgresql+psycopg://reg@127.0.0.1:{port}"
    subprocess.run([*as_postgres, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], stdout=subprocess.DEVNULL)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_reg(reg, postgres_server, monkeypatch):
    """A fresh database on the server for this test; the registry root keeps only files."""
    import psycopg

    name = f"reg_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(
        postgres_server.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    monkeypatch.setenv("REG_DATABASE_URL", f"{postgres_server}/{name}")
    return reg


def test_status_add_verify_and_licence_on_postgres(pg_reg, tmp_path, flame_dest):
    reg = pg_reg
    # the `reg` fixture configured pipeline roots before the URL was set; set them again here
    for key in ("cap4d", "pixel3dmm"):
        assert reg("config", f"pipelines.{key}.root", reg.pipeline_root(key)).exit_code == 0
    _, doc = reg.json("status")
    assert any(a["id"] == "licence:flame" for a in doc["owner_actions"])
    assert reg("license", "flame", "requested", "--note", "form sent").exit_code == 0
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")
    assert reg("add", src).exit_code == 0
    _, doc = reg.json("status")
    assert doc["assets"]["flame2023"]["state"] == "verified"
    flame = next(a for a in doc["owner_actions"] if a["id"] == "licence:flame")
    assert flame["licence"]["state"] == "requested" and flame["licence"]["days_waiting"] == 0
    code, results = reg.json("verify", "--full")
    assert code == 0 and results[0]["state"] == "verified"
    assert "added" in reg("show", "flame2023").stdout


def test_two_hosts_on_one_database_keep_their_own_placements_and_settings(pg_reg, tmp_path, monkeypatch):
    """Machine facts (paths, fingerprints, checkout roots) are per host; licences and pins are shared."""
    from conftest import Reg

    a = pg_reg
    b = Reg(tmp_path / "registry-b", tmp_path / "code-b")
    src = write_flame_fixed(tmp_path / "flame2023_no_jaw.pkl")

    def on(host: str, reg: Reg, *args):
        monkeypatch.setenv("REG_HOST_ID", host)
        return reg(*args)

    for host, reg in (("host-a", a), ("host-b", b)):
        reg.pipeline_root("cap4d").mkdir(parents=True, exist_ok=True)
        assert on(host, reg, "config", "pipelines.cap4d.root", reg.pipeline_root("cap4d")).exit_code == 0
    assert on("host-a", a, "add", src).exit_code == 0
    assert on("host-a", a, "license", "flame", "approved").exit_code == 0

    monkeypatch.setenv("REG_HOST_ID", "host-b")
    _, doc_b = b.json("status")
    assert doc_b["assets"]["flame2023"]["state"] == "missing"  # A's file is not on B
    assert doc_b["assets"]["flame2023"]["path"].startswith(str(b.pipeline_root("cap4d")))
    assert b.json("config", "pipelines.cap4d.root")[1]["value"] == str(b.pipeline_root("cap4d"))
    flame = next(x for x in doc_b["owner_actions"] if x["id"] == "licence:flame")
    assert flame["licence"]["state"] == "approved"  # licences are shared
    assert b("add", src).exit_code == 0

    monkeypatch.setenv("REG_HOST_ID", "host-a")
    _, doc_a = a.json("status")
    assert doc_a["assets"]["flame2023"]["state"] == "verified"
    assert doc_a["assets"]["flame2023"]["path"].startswith(str(a.pipeline_root("cap4d")))
    assert a.json("config", "pipelines.cap4d.root")[1]["value"] == str(a.pipeline_root("cap4d"))
    code, results = a.json("verify", "--full")
    assert code == 0 and [r["path"] for r in results] == [doc_a["assets"]["flame2023"]["path"]]


def test_migrations_round_trip_on_postgres(pg_reg):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from reg.registry.db import SCHEMA_HEAD, alembic_config, current_revision, make_engine
    from reg.registry.models import Base

    engine = make_engine(os.environ["REG_DATABASE_URL"])
    for target in ("head", "base", "head"):
        with engine.begin() as conn:
            (command.upgrade if target == "head" else command.downgrade)(alembic_config(conn), target)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    assert current_revision(engine) == SCHEMA_HEAD


def test_render_lock_runs_and_promotion_on_postgres(pg_reg, tmp_path):
    reg = pg_reg
    write_tiny_pipeline(reg.root, tmp_path, "700", {"v1": "production", "v2": "candidate"})
    assert reg("render", "episode", "700", "--version", "v2").exit_code == 0
    assert "up to date" in reg("render", "episode", "700", "--version", "v2").stdout
    runs = reg.json("runs")[1]
    assert [(r["version"], r["state"]) for r in runs] == [("v2", "succeeded")]
    assert reg("promote", "episode", "700", "v2").exit_code == 0
    rows = {r["version"]: r["state"] for r in reg.json("versions", "episode", "700")[1]["versions"]}
    assert rows == {"v1": "previous", "v2": "production"}
