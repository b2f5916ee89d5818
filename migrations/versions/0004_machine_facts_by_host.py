"""machine facts by host; ctime in fingerprints; environment checks in the database

Placements and settings become per machine (primary key host + key), so machines sharing one
PostgreSQL registry do not overwrite each other's paths. Existing rows belong to the machine
that runs this upgrade.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from reg.registry.state import host_id

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


ASSET_COLUMNS = "key, sha256, placed_path, link_mode, state, fp_size, fp_mtime_ns, fp_inode, verified_at"


def _asset_records(name: str, with_host: bool) -> None:
    op.create_table(
        name,
        *([sa.Column("host", sa.String(255), nullable=False)] if with_host else []),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("placed_path", sa.Text(), nullable=False),
        sa.Column("link_mode", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("fp_size", sa.BigInteger(), nullable=False),
        sa.Column("fp_mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("fp_inode", sa.BigInteger(), nullable=False),
        *([sa.Column("fp_ctime_ns", sa.BigInteger(), nullable=True)] if with_host else []),
        sa.Column("verified_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["sha256"], ["store_objects.sha256"]),
        sa.PrimaryKeyConstraint(*(["host", "key"] if with_host else ["key"]), name=_pk_name(name, with_host)),
    )


def _pk_name(table: str, with_host: bool) -> str:
    """Distinct names before and after: PostgreSQL keeps a constraint's name across a table rename."""
    return f"pk_{table.removesuffix('_new')}" + ("_by_host" if with_host else "")


def _settings(name: str, with_host: bool) -> None:
    op.create_table(
        name,
        *([sa.Column("host", sa.String(255), nullable=False)] if with_host else []),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(*(["host", "key"] if with_host else ["key"]), name=_pk_name(name, with_host)),
    )


def _rebuild(table: str, make, with_host: bool, columns: str) -> None:
    """Copy a table into its new shape (a primary key cannot be altered portably), then swap."""
    make(f"{table}_new", with_host)
    select = f"SELECT :host, {columns}" if with_host else f"SELECT {columns}"
    target = f"host, {columns}" if with_host else columns
    op.get_bind().execute(
        sa.text(f"INSERT INTO {table}_new ({target}) {select} FROM {table}"),
        {"host": host_id()} if with_host else {},
    )
    op.drop_table(table)
    op.rename_table(f"{table}_new", table)


def upgrade() -> None:
    _rebuild("asset_records", _asset_records, True, ASSET_COLUMNS)
    _rebuild("settings", _settings, True, "key, value")
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
    op.create_table(
        "environment_checks",
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.Column("interpreter", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("host", "pipeline"),
    )


def downgrade() -> None:
    """Keeps this machine's rows only: other hosts' placements cannot live in a host-less table."""
    op.drop_table("environment_checks")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("host")
    here = {"host": host_id()}
    op.get_bind().execute(sa.text("DELETE FROM asset_records WHERE host != :host"), here)
    op.get_bind().execute(sa.text("DELETE FROM settings WHERE host != :host"), here)
    _rebuild("asset_records", _asset_records, False, ASSET_COLUMNS)
    _rebuild("settings", _settings, False, "key, value")
