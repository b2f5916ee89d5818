"""All reads and writes of registry state. The only module that talks SQL (through SQLAlchemy)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AssetRecord, Event, LicenceRecord, Setting, StoreObject
from .store import Fingerprint

LICENCE_STATES = ("not-requested", "requested", "approved", "rejected")


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)  # stored as naive UTC everywhere


def all_settings(reg) -> dict[str, str]:
    with reg.engine.connect() as c:
        return dict(c.execute(select(Setting.key, Setting.value)).all())


def set_setting(reg, key: str, value: str) -> None:
    with Session(reg.engine) as s, s.begin():
        s.merge(Setting(key=key, value=value))


def asset_records(reg) -> dict[str, AssetRecord]:
    with Session(reg.engine) as s:
        rows = s.scalars(select(AssetRecord)).all()
        s.expunge_all()
    return {r.key: r for r in rows}


def licence_records(reg) -> dict[str, LicenceRecord]:
    with Session(reg.engine) as s:
        rows = s.scalars(select(LicenceRecord)).all()
        s.expunge_all()
    return {r.key: r for r in rows}


def events(reg, subject: str) -> list[Event]:
    with Session(reg.engine) as s:
        rows = s.scalars(select(Event).where(Event.subject == subject).order_by(Event.id)).all()
        s.expunge_all()
    return list(rows)


def record_placed(reg, key: str, sha256: str, size: int, placed_path: str, link_mode: str,
                  fp: Fingerprint, event: str, detail: str = "") -> None:
    """One transaction: the store object, the asset's verified placement, and its history line."""
    t = now()
    with Session(reg.engine) as s, s.begin():
        if s.get(StoreObject, sha256) is None:
            s.add(StoreObject(sha256=sha256, size=size, stored_at=t))
        s.merge(AssetRecord(key=key, sha256=sha256, placed_path=placed_path, link_mode=link_mode, state="verified",
                            fp_size=fp.size, fp_mtime_ns=fp.mtime_ns, fp_inode=fp.inode, verified_at=t))
        s.add(Event(subject=key, event=event, sha256=sha256, detail=detail, at=t))


def record_stored(reg, sha256: str, size: int, subject: str, detail: str) -> None:
    """A store object kept for safety (a displaced file), with a history line."""
    t = now()
    with Session(reg.engine) as s, s.begin():
        if s.get(StoreObject, sha256) is None:
            s.add(StoreObject(sha256=sha256, size=size, stored_at=t))
        s.add(Event(subject=subject, event="displaced", sha256=sha256, detail=detail, at=t))


def record_check(reg, key: str, state: str, fp: Fingerprint | None, event: str | None, detail: str = "") -> None:
    """Verification outcome: new state (and fingerprint when the content matched)."""
    t = now()
    with Session(reg.engine) as s, s.begin():
        rec = s.get(AssetRecord, key)
        rec.state = state
        if fp is not None:
            rec.fp_size, rec.fp_mtime_ns, rec.fp_inode, rec.verified_at = fp.size, fp.mtime_ns, fp.inode, t
        if event:
            s.add(Event(subject=key, event=event, sha256=rec.sha256, detail=detail, at=t))


def set_licence(reg, key: str, state: str, note: str | None) -> LicenceRecord:
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
