"""Registry state as SQLAlchemy 2 typed models; what *should* exist is the catalog (manifests).

Rows keyed by `host` are facts of one machine (placements, settings, environment checks); the
rest is shared by every machine on a team database. The schema is made by Alembic only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .store import Fingerprint


class Base(DeclarativeBase):
    pass


class StoreObject(Base):
    """One immutable file in the content-addressed store, `objects/sha256/ab/cdef...`."""

    __tablename__ = "store_objects"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    stored_at: Mapped[datetime]


class AssetRecord(Base):
    """What this machine has for one catalog asset: the verified object and where it is placed.

    The stat fingerprint (size, mtime_ns, inode) of the placed file at verification time lets
    `verify` and `status` skip rehashing an unchanged file (as DVC's state cache does).
    """

    __tablename__ = "asset_records"
    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("store_objects.sha256"))
    placed_path: Mapped[str] = mapped_column(Text)
    link_mode: Mapped[str] = mapped_column(String(16))  # symlink | hardlink | copy | adopted
    state: Mapped[str] = mapped_column(String(16))  # verified | changed | missing
    fp_size: Mapped[int] = mapped_column(BigInteger)
    fp_mtime_ns: Mapped[int] = mapped_column(BigInteger)
    fp_inode: Mapped[int] = mapped_column(BigInteger)
    fp_ctime_ns: Mapped[int | None] = mapped_column(BigInteger)
    verified_at: Mapped[datetime]

    @property
    def fingerprint(self) -> Fingerprint:
        return Fingerprint(self.fp_size, self.fp_mtime_ns, self.fp_inode, self.fp_ctime_ns)


class LicenceRecord(Base):
    """Where the owner stands with a gated licence. 'Acquired' is derived, never stored."""

    __tablename__ = "licence_records"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # not-requested | requested | approved | rejected
    note: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class Event(Base):
    """Append-only history: added, verified, replaced, changed, licence state changes."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_subject", "subject"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(200))  # asset key, or "licence:KEY"
    event: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]
    host: Mapped[str | None] = mapped_column(String(255))  # the machine it happened on


class Setting(Base):
    """Per-machine configuration, e.g. `pipelines.cap4d.root`."""

    __tablename__ = "settings"
    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class EnvironmentCheckRow(Base):
    """The last environment check of a pipeline on one machine (`reg env`, the render gate).
    `interpreter` fingerprints the venv when checked, so a later change makes it stale."""

    __tablename__ = "environment_checks"
    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(200), primary_key=True)
    checked_at: Mapped[datetime]
    problems: Mapped[str] = mapped_column(Text)  # JSON list of strings
    interpreter: Mapped[str] = mapped_column(Text, default="")


class SourceGate(Base):
    """A download refused as gated (Hugging Face 401/403 'GatedRepo'): an owner action in status
    until a fetch of that asset succeeds. Status cannot ask the network, so the refusal is kept."""

    __tablename__ = "source_gates"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    detail: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[datetime]


class VersionState(Base):
    """A promotion recorded on this registry; it overrides the manifest's state of a version."""

    __tablename__ = "version_states"
    episode: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime]


class Run(Base):
    """One render of an episode version: what ran, on exactly which inputs, and what it made.

    JSON columns keep the record append-only and self-contained: `commands` (argv per step),
    `inputs` (asset key -> sha256), `environment` (python, packages, GPU), `outputs` (path -> sha256).
    """

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_episode_version", "episode", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    episode: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    pipeline: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed | timed-out | cancelled | lost
    fingerprint: Mapped[str] = mapped_column(String(64))
    commands: Mapped[str] = mapped_column(Text)
    inputs: Mapped[str] = mapped_column(Text)
    environment: Mapped[str] = mapped_column(Text, default="{}")
    outputs: Mapped[str] = mapped_column(Text, default="{}")
    run_dir: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255))
    boot_id: Mapped[str] = mapped_column(String(64))
    pid: Mapped[int]
    exit_code: Mapped[int | None]
    error: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class RenderLock(Base):
    """At most one render of an episode version at a time, across processes sharing the registry."""

    __tablename__ = "render_locks"
    episode: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
