"""All reads and writes of registry state. The only module that talks SQL (through SQLAlchemy).

The reads `reg status` needs (settings, placements, licences) are plain Core queries over the
table objects' names, so the status path never imports the ORM and the models (~75 ms of
start-up); writes and history use the typed ORM models, imported where they are used.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy import text

from .store import Fingerprint

LICENCE_STATES = ("not-requested", "requested", "approved", "rejected")


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # stored as naive UTC everywhere


def all_settings(reg) -> dict[str, str]:
    with reg.engine.connect() as c:
        return dict(c.execute(text("SELECT key, value FROM settings")).all())


def set_setting(reg, key: str, value: str) -> None:
    from sqlalchemy.orm import Session

    from .models import Setting

    with Session(reg.engine) as s, s.begin():
        s.merge(Setting(key=key, value=value))


def asset_records(reg) -> dict:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from .models import AssetRecord

    with Session(reg.engine) as s:
        rows = s.scalars(select(AssetRecord)).all()
        s.expunge_all()
    return {r.key: r for r in rows}


def placements(reg) -> dict[str, tuple]:
    """key -> (sha256, state, Fingerprint) for every registered asset; plain rows, for status's hot path."""
    with reg.engine.connect() as c:
        rows = c.execute(text("SELECT key, sha256, state, fp_size, fp_mtime_ns, fp_inode FROM asset_records")).all()
    return {r[0]: (r[1], r[2], Fingerprint(r[3], r[4], r[5])) for r in rows}


def licence_records(reg) -> dict[str, SimpleNamespace]:
    with reg.engine.connect() as c:
        rows = c.execute(text("SELECT key, state, note, requested_at, updated_at FROM licence_records")).all()
    return {
        r.key: SimpleNamespace(
            key=r.key,
            state=r.state,
            note=r.note,
            requested_at=_as_datetime(r.requested_at),
            updated_at=_as_datetime(r.updated_at),
        )
        for r in rows
    }


def _as_datetime(value) -> datetime | None:
    """Textual SQL returns SQLite's stored text; PostgreSQL returns datetimes already."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def events(reg, subject: str) -> list:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from .models import Event

    with Session(reg.engine) as s:
        rows = s.scalars(select(Event).where(Event.subject == subject).order_by(Event.id)).all()
        s.expunge_all()
    return list(rows)


def record_placed(
    reg,
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
    from sqlalchemy.orm import Session

    from .models import AssetRecord, Event, SourceGate, StoreObject

    t = now()
    with Session(reg.engine) as s, s.begin():
        if s.get(StoreObject, sha256) is None:
            s.add(StoreObject(sha256=sha256, size=size, stored_at=t))
            s.flush()  # no ORM relationship orders the inserts, so the referenced row goes first
        s.merge(
            AssetRecord(
                key=key,
                sha256=sha256,
                placed_path=placed_path,
                link_mode=link_mode,
                state="verified",
                fp_size=fp.size,
                fp_mtime_ns=fp.mtime_ns,
                fp_inode=fp.inode,
                verified_at=t,
            )
        )
        s.add(Event(subject=key, event=event, sha256=sha256, detail=detail, at=t))
        if (gate := s.get(SourceGate, key)) is not None:
            s.delete(gate)  # the file is here now, however it came


def record_stored(reg, sha256: str, size: int, subject: str, detail: str) -> None:
    """A store object kept for safety (a displaced file), with a history line."""
    from sqlalchemy.orm import Session

    from .models import Event, StoreObject

    t = now()
    with Session(reg.engine) as s, s.begin():
        if s.get(StoreObject, sha256) is None:
            s.add(StoreObject(sha256=sha256, size=size, stored_at=t))
        s.add(Event(subject=subject, event="displaced", sha256=sha256, detail=detail, at=t))


def record_object(reg, sha256: str, size: int) -> None:
    """A store object made by reg itself (a render output)."""
    from sqlalchemy.orm import Session

    from .models import StoreObject

    with Session(reg.engine) as s, s.begin():
        if s.get(StoreObject, sha256) is None:
            s.add(StoreObject(sha256=sha256, size=size, stored_at=now()))


def record_check(reg, key: str, state: str, fp: Fingerprint | None, event: str | None, detail: str = "") -> None:
    """Verification outcome: new state (and fingerprint when the content matched)."""
    from sqlalchemy.orm import Session

    from .models import AssetRecord, Event

    t = now()
    with Session(reg.engine) as s, s.begin():
        rec = s.get(AssetRecord, key)
        rec.state = state
        if fp is not None:
            rec.fp_size, rec.fp_mtime_ns, rec.fp_inode, rec.verified_at = fp.size, fp.mtime_ns, fp.inode, t
        if event:
            s.add(Event(subject=key, event=event, sha256=rec.sha256, detail=detail, at=t))


def set_licence(reg, key: str, state: str, note: str | None):
    from sqlalchemy.orm import Session

    from .models import Event, LicenceRecord

    t = now()
    with Session(reg.engine) as s, s.begin():
        rec = s.get(LicenceRecord, key) or LicenceRecord(key=key, note="", requested_at=None)
        rec.state, rec.updated_at = state, t
        if note is not None:
            rec.note = note
        if state == "requested":
            rec.requested_at = t
        s.merge(rec)
        s.add(Event(subject=f"licence:{key}", event=f"licence {state}", sha256=None, detail=note or "", at=t))
    return rec


def source_gates(reg) -> dict[str, str]:
    with reg.engine.connect() as c:
        return dict(c.execute(text("SELECT key, detail FROM source_gates")).all())


def set_source_gate(reg, key: str, detail: str) -> None:
    from sqlalchemy.orm import Session

    from .models import Event, SourceGate

    t = now()
    with Session(reg.engine) as s, s.begin():
        s.merge(SourceGate(key=key, detail=detail, seen_at=t))
        s.add(Event(subject=key, event="fetch gated", sha256=None, detail=detail, at=t))


# --- runs, render locks, version states ---------------------------------------------------


def start_run(reg, fields: dict, holder_alive) -> int:
    """Insert a running Run and take the (episode, version) render lock, in one transaction.

    A lock whose run is no longer alive (`holder_alive(run)` is False: process gone, machine
    rebooted) is released and its run marked lost first. A live holder raises RenderBusyError.
    """
    from sqlalchemy.exc import IntegrityError as DBIntegrityError
    from sqlalchemy.orm import Session

    from .errors import RenderBusyError
    from .models import RenderLock, Run

    key = (fields["episode"], fields["version"])
    with Session(reg.engine) as s, s.begin():
        lock = s.get(RenderLock, key)
        if lock is not None:
            holder = s.get(Run, lock.run_id)
            if holder_alive(holder):
                raise RenderBusyError(
                    f"Episode {key[0]} {key[1]} is already rendering: run {holder.id}, pid {holder.pid} on "
                    f"{holder.host}, started {holder.started_at:%Y-%m-%d %H:%M} UTC. Wait for it (`reg log "
                    f"{holder.id} --follow`), or stop that process; a crashed run is detected and released."
                )
            holder.state, holder.ended_at = "lost", now()
            holder.error = "process vanished while running (machine rebooted or killed); detected by the next render"
            s.delete(lock)
            s.flush()
        run = Run(state="running", started_at=now(), ended_at=None, exit_code=None, error="", outputs="{}", **fields)
        s.add(run)
        s.flush()
        s.add(RenderLock(episode=key[0], version=key[1], run_id=run.id))
        try:
            s.flush()
        except DBIntegrityError:
            raise RenderBusyError(
                f"Episode {key[0]} {key[1]} was just locked by another render. Try again when it ends (`reg runs`)."
            ) from None
        return run.id


def finish_run(reg, run_id: int, state: str, exit_code: int | None, error: str = "", **fields) -> None:
    from sqlalchemy import delete
    from sqlalchemy.orm import Session

    from .models import RenderLock, Run

    with Session(reg.engine) as s, s.begin():
        run = s.get(Run, run_id)
        run.state, run.exit_code, run.error, run.ended_at = state, exit_code, error, now()
        for k, v in fields.items():
            setattr(run, k, v)
        s.execute(delete(RenderLock).where(RenderLock.run_id == run_id))


def mark_lost(reg, holder_alive) -> list[int]:
    """Runs recorded as running whose process is gone become lost; their locks are released."""
    from sqlalchemy import delete, select
    from sqlalchemy.orm import Session

    from .models import RenderLock, Run

    lost = []
    with Session(reg.engine) as s, s.begin():
        for run in s.scalars(select(Run).where(Run.state == "running")):
            if not holder_alive(run):
                run.state, run.ended_at = "lost", now()
                run.error = "process vanished while running (machine rebooted or killed)"
                s.execute(delete(RenderLock).where(RenderLock.run_id == run.id))
                lost.append(run.id)
    return lost


def runs(reg, episode: str | None = None, version: str | None = None) -> list:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from .models import Run

    q = select(Run).order_by(Run.id)
    if episode is not None:
        q = q.where(Run.episode == str(episode))
    if version is not None:
        q = q.where(Run.version == version)
    with Session(reg.engine) as s:
        rows = list(s.scalars(q))
        s.expunge_all()
    return rows


def get_run(reg, run_id: int):
    from sqlalchemy.orm import Session

    from .models import Run

    with Session(reg.engine) as s:
        run = s.get(Run, run_id)
        if run is not None:
            s.expunge(run)
    return run


def version_states(reg) -> dict[tuple[str, str], str]:
    with reg.engine.connect() as c:
        return {(r[0], r[1]): r[2] for r in c.execute(text("SELECT episode, version, state FROM version_states"))}


def set_version_states(reg, changes: dict[tuple[str, str], str]) -> None:
    from sqlalchemy.orm import Session

    from .models import Event, VersionState

    t = now()
    with Session(reg.engine) as s, s.begin():
        for (episode, version), state in changes.items():
            s.merge(VersionState(episode=episode, version=version, state=state, changed_at=t))
            s.add(Event(subject=f"episode:{episode}", event=f"{version} {state}", sha256=None, detail="", at=t))
