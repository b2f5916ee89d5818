"""The schema is Alembic's: upgrade, downgrade, upgrade again, and no drift from the models."""

import sqlite3

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from reg.registry.db import SCHEMA_HEAD, alembic_config, current_revision, make_engine
from reg.registry.models import Base


def test_upgrade_downgrade_upgrade_and_no_autogenerate_diff(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'reg.db'}")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert "asset_records" in inspect(engine).get_table_names()
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert current_revision(engine) == SCHEMA_HEAD


def test_schema_head_constant_matches_alembic():
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD


def test_first_command_upgrades_an_older_database(reg):
    db = reg.root / "reg.db"
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0001")
    assert current_revision(engine) == "0001"
    engine.dispose()
    assert reg("status").exit_code == 0
    assert current_revision(make_engine(f"sqlite:///{db}")) == SCHEMA_HEAD


def test_sqlite_runs_in_wal_mode(reg):
    reg("status")
    assert sqlite3.connect(reg.root / "reg.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
