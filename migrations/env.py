"""Alembic environment. reg calls it programmatically (registry/db.py) with a live connection;
`alembic -c migrations/alembic.ini` works too for developers (sqlalchemy.url from REG_DATABASE_URL)."""

import os

from alembic import context
from sqlalchemy import create_engine

from reg.registry.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = os.environ.get("REG_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("Set REG_DATABASE_URL (or sqlalchemy.url) to the database to migrate.")
    with create_engine(url).connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
