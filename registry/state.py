"""Registry state: one typed interface over the database, in the manner of dvc-data's `State`.

Every read and write of the registry's own tables goes through `State` (reached as `reg.state`);
the CLI never opens a session, and the runner's tables (runs, locks, production history) are kept
by `reg.runner.records`. Reads on `reg status`'s hot path (settings, placements, licences) are
plain Core queries, so status never imports the ORM models; writes use the typed models.

Machine facts vs shared facts: with a team database (PostgreSQL) several machines share one
registry. Placements (a path and an inode fingerprint), settings (a checkout root) and
environment checks are true of one machine only, so they are keyed by `host_id()`. Pinned hashes,
store objects, licences, source gates, runs and production history are shared.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine, text

from .store import Fingerprint

LicenceState = Literal["not-requested", "requested", "approved", "rejected"]
LICENCE_STATES: tuple[LicenceState, ...] = ("not-requested", "requested", "approved", "rejected")
# What the database says of a placement; status adds "unverified" (a file at the path reg never checked).
PlacementState = Literal["verified", "changed", "missing"]


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # stored as naive UTC everywhere


def host_id() -> str:
    """A stable id of this machine: $REG_HOST_ID, else systemd's machine-id, else the host name.

    The machine-id survives renames and DHCP; the environment variable lets one machine act as
    several hosts (tests, containers sharing a machine-id)."""
    if os.environ.get("REG_HOST_ID"):
        return os.environ["REG_HOST_ID"]
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path) as f:
                if value := f.read().strip():
                    return value
        except OSError:
            pass
    return socket.gethostname()


@dataclass(frozen=True)
class LicenceView:
    key: str
    state: LicenceState
    note: str
    requested_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class EnvironmentCheck:
    checked_at: datetime
    problems: list[str]
    interpreter: str  # the venv's interpreter fingerprint when checked: a later change voids the check


def _as_datetime(value) -> datetime | None:
    """Textual SQL returns SQLite's stored text; PostgreSQL returns datetimes already."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _upsert(session, model, values: dict, update: bool = True) -> None:
    """Insert, or on a key conflict update (or, `update=False`, keep) the row, in one statement.

    Check-then-insert (`Session.merge`) races: sixteen processes adding the same file all see no
    row, all insert, and all but one fail with IntegrityError. Both SQLite and PostgreSQL resolve
    the conflict inside the database instead."""
    from sqlalchemy import Table

    table = model.__table__
    assert isinstance(table, Table)
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values)
    keys = [c.name for c in table.primary_key.columns]
    if update:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={k: v for k, v in values.items() if k not in keys})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    session.execute(stmt)


class State:
    """The registry's rows on one database, seen from one machine (`host`)."""

    def __init__(self, engine: Engine, host: str | None = None) -> None:
        self.engine = engine
        self.host = host or host_id()

    def _session(self):
        from sqlalchemy.orm import Session

        return Session(self.engine)

    # --- settings (per machine) ------------------------------------------------------------

    def settings(self) -> dict[str, str]:
        with self.engine.connect() as c:
            rows = c.execute(text("SELECT key, value FROM settings WHERE host = :h"), {"h": self.host}).all()
        return dict(rows)

    def set_setting(self, key: str, value: str) -> None:
        from .models import Setting

        with self._session() as s, s.begin():
            _upsert(s, Setting, {"host": self.host, "key": key, "value": value})

    def unset_setting(self, key: str) -> bool:
        from .models import Setting

        with self._session() as s, s.begin():
            row = s.get(Setting, (self.host, key))
            if row is not None:
                s.delete(row)
            return row is not None

    # --- placements (per machine) and store objects (shared) ---------------------------------

    def asset_records(self, keys: list[str] | None = None) -> dict:
        """key -> AssetRecord (detached, read-only) for the assets placed on this machine (all, or `keys`)."""
        from sqlalchemy import select

        from .models import AssetRecord

        query = select(AssetRecord).where(AssetRecord.host == self.host)
        if keys is not None:
            query = query.where(AssetRecord.key.in_(keys))
        with self._session() as s:
            rows = s.scalars(query).all()
            s.expunge_all()
        return {r.key: r for r in rows}

    def placements(self) -> dict[str, tuple[str, str, Fingerprint]]:
        """key -> (sha256, state, Fingerprint): plain rows for status's hot path."""
        with self.engine.connect() as c:
            rows = c.execute(
                text(
                    "SELECT key, sha256, state, fp_size, fp_mtime_ns, fp_inode, fp_ctime_ns "
                    "FROM asset_records WHERE host = :h"
                ),
                {"h": self.host},
            ).all()
        return {r[0]: (r[1], r[2], Fingerprint(r[3], r[4], r[5], r[6])) for r in rows}

    def pinned_hashes(self) -> dict[str, str]:
        """sha256 -> asset key for every hash any machine of this registry accepted (shared facts)."""
        with self.engine.connect() as c:
            return {sha: key for key, sha in c.execute(text("SELECT key, sha256 FROM asset_records"))}

    def record_placed(
        self,
        key: str,
        sha256: str,
        size: int,
        placed_path: str,
        link_mode: str,
        fp: Fingerprint,
        event: str,
        detail: str = "",
    ) -> None:
        """One transaction: the store object, the asset's verified placement, and its history line."""
        from .models import AssetRecord, Event, SourceGate

        t = now()
        with self._session() as s, s.begin():
            self._insert_object(s, sha256, size, t)
            _upsert(
                s,
                AssetRecord,
                {
                    "host": self.host,
                    "key": key,
                    "sha256": sha256,
                    "placed_path": placed_path,
                    "link_mode": link_mode,
                    "state": "verified",
                    "fp_size": fp.size,
                    "fp_mtime_ns": fp.mtime_ns,
                    "fp_inode": fp.inode,
                    "fp_ctime_ns": fp.ctime_ns,
                    "verified_at": t,
                },
            )
            s.add(Event(subject=key, event=event, sha256=sha256, detail=detail, at=t, host=self.host))
            if (gate := s.get(SourceGate, key)) is not None:
                s.delete(gate)  # the file is here now, however it came

    def record_stored(self, sha256: str, size: int, subject: str, detail: str) -> None:
        """A store object kept for safety (a displaced file), with a history line."""
        from .models import Event

        t = now()
        with self._session() as s, s.begin():
            self._insert_object(s, sha256, size, t)
            s.add(Event(subject=subject, event="displaced", sha256=sha256, detail=detail, at=t, host=self.host))

    def record_object(self, sha256: str, size: int) -> None:
        """A store object made by reg itself (a render output)."""
        with self._session() as s, s.begin():
            self._insert_object(s, sha256, size, now())

    @staticmethod
    def _insert_object(session, sha256: str, size: int, at: datetime) -> None:
        from .models import StoreObject

        _upsert(session, StoreObject, {"sha256": sha256, "size": size, "stored_at": at}, update=False)

    def record_checks(self, checks: list[tuple[str, PlacementState, Fingerprint | None, str | None, str]]) -> None:
        """Many verification outcomes in one transaction (`verify --full` of thousands of files):
        each (key, new state, fingerprint when the content matched, event or None, detail)."""
        from .models import AssetRecord, Event

        t = now()
        with self._session() as s, s.begin():
            for key, state, fp, event, detail in checks:
                rec = s.get(AssetRecord, (self.host, key))
                if rec is None:
                    continue  # forgotten meanwhile (`reg rm`)
                rec.state = state
                if fp is not None:
                    rec.fp_size, rec.fp_mtime_ns, rec.fp_inode = fp.size, fp.mtime_ns, fp.inode
                    rec.fp_ctime_ns, rec.verified_at = fp.ctime_ns, t
                if event:
                    s.add(Event(subject=key, event=event, sha256=rec.sha256, detail=detail, at=t, host=self.host))

    def forget(self, key: str, detail: str) -> str | None:
        """Drop this machine's placement record of `key` (`reg rm`); the store object stays until gc."""
        from .models import AssetRecord, Event

        with self._session() as s, s.begin():
            rec = s.get(AssetRecord, (self.host, key))
            if rec is None:
                return None
            sha = rec.sha256
            s.delete(rec)
            s.add(Event(subject=key, event="removed", sha256=sha, detail=detail, at=now(), host=self.host))
            return sha

    def object_sizes(self) -> dict[str, int]:
        with self.engine.connect() as c:
            return dict(c.execute(text("SELECT sha256, size FROM store_objects")).all())

    def delete_objects(self, shas: list[str]) -> None:
        """Rows of objects `reg gc` removed from this machine's store and nothing references."""
        from sqlalchemy import delete

        from .models import StoreObject

        with self._session() as s, s.begin():
            s.execute(delete(StoreObject).where(StoreObject.sha256.in_(shas)))

    # --- history -------------------------------------------------------------------------

    def events(self, subject: str) -> list:
        from sqlalchemy import select

        from .models import Event

        with self._session() as s:
            rows = s.scalars(select(Event).where(Event.subject == subject).order_by(Event.id)).all()
            s.expunge_all()
        return list(rows)

    # --- licences and source gates (shared) ----------------------------------------------

    def licences(self) -> dict[str, LicenceView]:
        with self.engine.connect() as c:
            rows = c.execute(text("SELECT key, state, note, requested_at, updated_at FROM licence_records")).all()
        return {
            r.key: LicenceView(r.key, r.state, r.note, _as_datetime(r.requested_at), _as_datetime(r.updated_at))
            for r in rows
        }

    def set_licence(self, key: str, state: LicenceState, note: str | None) -> LicenceView:
        """Record the owner's standing with a licence; returns a plain snapshot (safe after commit)."""
        from .models import Event, LicenceRecord

        t = now()
        with self._session() as s, s.begin():
            old = s.get(LicenceRecord, key)
            if old is not None and old.state == state and note in (None, old.note):
                # said again: nothing changed, so no new history line and the waiting clock keeps running
                return LicenceView(key, state, old.note, old.requested_at, old.updated_at)
            kept_note: str = old.note if old is not None else ""
            requested_at = old.requested_at if old is not None else None
            if state == "requested" and (old is None or old.state != "requested"):
                requested_at = t
            new_note = kept_note if note is None else note
            values = {
                "key": key,
                "state": state,
                "note": new_note,
                "requested_at": requested_at,
                "updated_at": t,
            }
            _upsert(s, LicenceRecord, values)
            s.add(Event(subject=f"licence:{key}", event=f"licence {state}", sha256=None, detail=note or "", at=t))
        return LicenceView(key, state, new_note, requested_at, t)

    def source_gates(self) -> dict[str, str]:
        with self.engine.connect() as c:
            return dict(c.execute(text("SELECT key, detail FROM source_gates")).all())

    def set_source_gate(self, key: str, detail: str) -> None:
        from .models import Event, SourceGate

        t = now()
        with self._session() as s, s.begin():
            _upsert(s, SourceGate, {"key": key, "detail": detail, "seen_at": t})
            s.add(Event(subject=key, event="fetch gated", sha256=None, detail=detail, at=t, host=self.host))

    # --- environment checks (per machine) ------------------------------------------------

    def save_environment_check(self, pipeline: str, problems: list[str], interpreter: str) -> None:
        from .models import EnvironmentCheckRow

        with self._session() as s, s.begin():
            values = {
                "host": self.host,
                "pipeline": pipeline,
                "checked_at": now(),
                "problems": json.dumps(problems),
                "interpreter": interpreter,
            }
            _upsert(s, EnvironmentCheckRow, values)

    def environment_checks(self) -> dict[str, EnvironmentCheck]:
        with self.engine.connect() as c:
            rows = c.execute(
                text("SELECT pipeline, checked_at, problems, interpreter FROM environment_checks WHERE host = :h"),
                {"h": self.host},
            ).all()
        return {r[0]: EnvironmentCheck(_as_datetime(r[1]) or now(), json.loads(r[2]), r[3]) for r in rows}
