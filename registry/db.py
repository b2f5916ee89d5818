"""Database connection: SQLite (WAL, busy timeout) by default, any SQLAlchemy URL by REG_DATABASE_URL.

The schema is Alembic's alone. `connect()` upgrades an empty or older database to head on
first use; the head revision is a constant here so that the common path (already at head)
costs one small query and never imports Alembic (which alone takes ~0.3 s to import).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text

from .errors import DatabaseError, RegError

SCHEMA_HEAD = "0004"  # tests/test_migrations.py asserts this equals Alembic's head


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
    if engine.dialect.name == "sqlite" and "mode=ro" not in url:

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
    """The schema revision; None only for a database without reg's tables (then it is migrated).

    Any other failure (authentication, permissions, a server that is down) propagates: treating
    it as an empty database would try to create tables in someone else's database."""
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:
            conn.rollback()
            from sqlalchemy import inspect

            if inspect(conn).has_table("alembic_version"):
                raise  # the table is there and still unreadable: not an empty database
            return None


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """One process migrates; the others wait, then find the schema at head.

    SQLite: an exclusive file lock beside the database. PostgreSQL: a session advisory lock."""
    if engine.dialect.name == "sqlite" and engine.url.database:
        import fcntl

        with open(f"{engine.url.database}.migrate-lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield
        return
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(72657301)"))  # "reg" + 1
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(72657301)"))
        return
    yield


def upgrade(engine: Engine, target: str = "head") -> None:
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), target)


def connect(url: str) -> Engine:
    """An engine whose database is at the schema head, upgraded automatically if needed."""
    engine = make_engine(url)
    try:
        if current_revision(engine) != SCHEMA_HEAD:
            if "mode=ro" in url:
                raise DatabaseError(
                    f"The registry database {url.split('file:', 1)[-1].split('?')[0]} is read-only for you "
                    "and needs a schema upgrade first. Ask its owner to run any `reg` command once, or use a "
                    "registry of your own (--root DIR or REG_HOME)."
                )
            with _migration_lock(engine):
                if current_revision(engine) != SCHEMA_HEAD:
                    upgrade(engine)
    except RegError:
        raise
    except Exception as exc:
        raise DatabaseError(_explain(url, exc), url=make_url_safe(url)) from None
    return engine


def _explain(url: str, exc: Exception) -> str:
    """The failure in the user's terms: a file they cannot write is not a database server problem."""
    shown = make_url_safe(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        where = Path(path).parent
        if not os.access(where, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            return (
                f"The registry database {path} is not writable by you (user {getpass.getuser()}). Ask its owner "
                f"for write access to {where}, or use a registry of your own with --root DIR or REG_HOME."
            )
        return f"Cannot open the registry database {path}: {exc}. Check --root or REG_HOME."
    return (
        f"Cannot open the registry database {shown}: {exc}. Check REG_DATABASE_URL, and that the database "
        "server is running and reachable with those credentials."
    )


def make_url_safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
