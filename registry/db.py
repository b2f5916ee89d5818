"""Database connection: SQLite (WAL, busy timeout) by default, any SQLAlchemy URL by REG_DATABASE_URL.

The schema is Alembic's alone. `connect()` upgrades an empty or older database to head on
first use; the head revision is a constant here so that the common path (already at head)
costs one small query and never imports Alembic (which alone takes ~0.3 s to import).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text

from .errors import RegError

SCHEMA_HEAD = "0003"  # tests/test_migrations.py asserts this equals Alembic's head


def migrations_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("reg.migrations")))


def alembic_config(connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection"] = connection
    return cfg


def make_engine(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # WAL lets readers run beside a writer; the busy timeout makes concurrent
            # `reg` processes wait for a lock instead of failing at once.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:  # no table yet: an empty database
            conn.rollback()
            return None


def upgrade(engine: Engine, target: str = "head") -> None:
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), target)


def connect(url: str) -> Engine:
    """An engine whose database is at the schema head, upgraded automatically if needed."""
    try:
        engine = make_engine(url)
        if current_revision(engine) != SCHEMA_HEAD:
            upgrade(engine)
    except RegError:
        raise
    except Exception as exc:
        raise RegError(
            f"Cannot open the registry database {url}: {exc}. Check REG_DATABASE_URL or --root, "
            "and that the database server is running and reachable."
        ) from None
    return engine
