"""The runner's own state: runs, render locks, and which version of an episode is in production.

Shared facts on a team database (a run, its lock and the production history are true for every
machine); the registry's tables are `reg.registry.state`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from sqlalchemy import Engine, text

from reg.registry.state import now

RunState = Literal["running", "succeeded", "failed", "timed-out", "cancelled", "lost"]
VersionStateName = Literal["production", "candidate", "planned", "previous", "retired"]


class RunRecords:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self):
        from sqlalchemy.orm import Session

        return Session(self.engine)

    def start_run(self, fields: dict, holder_alive: Callable) -> int:
        """Insert a running Run and take the (episode, version) render lock, in one transaction.

        A lock whose run is no longer alive (`holder_alive(run)` is False: process gone, machine
        rebooted) is released and its run marked lost first. A live holder raises RenderBusyError.
        """
        from sqlalchemy.exc import IntegrityError as DBIntegrityError

        from reg.registry.errors import RenderBusyError
        from reg.registry.models import RenderLock, Run

        key = (fields["episode"], fields["version"])
        with self._session() as s, s.begin():
            lock = s.get(RenderLock, key)
            if lock is not None:
                holder = s.get(Run, lock.run_id)
                if holder is not None and holder_alive(holder):
                    raise RenderBusyError(
                        f"Episode {key[0]} {key[1]} is already rendering: run {holder.id}, pid {holder.pid} on "
                        f"{holder.host}, started {holder.started_at:%Y-%m-%d %H:%M} UTC. Wait for it (`reg log "
                        f"{holder.id} --follow`), or stop that process; a crashed run is detected and released.",
                        run=holder.id,
                    )
                if holder is not None:
                    holder.state, holder.ended_at = "lost", now()
                    holder.error = (
                        "process vanished while running (machine rebooted or killed); detected by the next render"
                    )
                s.delete(lock)
                s.flush()
            run = Run(
                state="running", started_at=now(), ended_at=None, exit_code=None, error="", outputs="{}", **fields
            )
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

    def finish_run(self, run_id: int, state: RunState, exit_code: int | None, error: str = "", **fields) -> None:
        from sqlalchemy import delete

        from reg.registry.models import RenderLock, Run

        with self._session() as s, s.begin():
            run = s.get(Run, run_id)
            assert run is not None  # inserted by start_run; runs are never deleted
            run.state, run.exit_code, run.error, run.ended_at = state, exit_code, error, now()
            for k, v in fields.items():
                setattr(run, k, v)
            s.execute(delete(RenderLock).where(RenderLock.run_id == run_id))

    def mark_lost(self, holder_alive: Callable) -> list[int]:
        """Runs recorded as running whose process is gone become lost; their locks are released."""
        from sqlalchemy import delete, select

        from reg.registry.models import RenderLock, Run

        lost = []
        with self._session() as s, s.begin():
            for run in s.scalars(select(Run).where(Run.state == "running")):
                if not holder_alive(run):
                    run.state, run.ended_at = "lost", now()
                    run.error = "process vanished while running (machine rebooted or killed)"
                    s.execute(delete(RenderLock).where(RenderLock.run_id == run.id))
                    lost.append(run.id)
        return lost

    def runs(self, episode: str | None = None, version: str | None = None) -> list:
        from sqlalchemy import select

        from reg.registry.models import Run

        q = select(Run).order_by(Run.id)
        if episode is not None:
            q = q.where(Run.episode == str(episode))
        if version is not None:
            q = q.where(Run.version == version)
        with self._session() as s:
            rows = list(s.scalars(q))
            s.expunge_all()
        return rows

    def get_run(self, run_id: int):
        from reg.registry.models import Run

        with self._session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                s.expunge(run)
        return run

    def referenced_objects(self) -> set[str]:
        """Every sha256 a run read or wrote: `reg gc` keeps them (a result traces to its bytes)."""
        import json

        refs: set[str] = set()
        with self.engine.connect() as c:
            for inputs, outputs in c.execute(text("SELECT inputs, outputs FROM runs")):
                refs.update(v for v in json.loads(inputs or "{}").values() if v)
                refs.update(v for v in json.loads(outputs or "{}").values() if v)
        return refs

    def version_states(self) -> dict[tuple[str, str], str]:
        with self.engine.connect() as c:
            return {(r[0], r[1]): r[2] for r in c.execute(text("SELECT episode, version, state FROM version_states"))}

    def record_production(self, episode: str, changes: dict[str, str], entry: dict) -> None:
        """New version states and one production-history line, in one transaction.

        The history is append-only events (subject `production:EPISODE`, detail the JSON entry):
        `reg versions` shows it, and a rollback reads the states a promotion replaced from it."""
        import json

        from reg.registry.models import Event, VersionState

        t = now()
        with self._session() as s, s.begin():
            for version, state in changes.items():
                s.merge(VersionState(episode=episode, version=version, state=state, changed_at=t))
            s.add(
                Event(
                    subject=f"production:{episode}", event=entry["action"], sha256=None, detail=json.dumps(entry), at=t
                )
            )

    def production_history(self, episode: str) -> list[dict]:
        """Every promotion and rollback of an episode, oldest first: {at, action, version, from, note, ...}."""
        import json

        with self.engine.connect() as c:
            rows = c.execute(
                text("SELECT at, detail FROM events WHERE subject = :s ORDER BY id"), {"s": f"production:{episode}"}
            ).all()
        return [{"at": str(at)[:19].replace(" ", "T"), **json.loads(detail)} for at, detail in rows]

    def set_version_states(self, changes: dict[tuple[str, str], str], note: str = "") -> None:
        from reg.registry.models import Event, VersionState

        t = now()
        with self._session() as s, s.begin():
            for (episode, version), state in changes.items():
                s.merge(VersionState(episode=episode, version=version, state=state, changed_at=t))
                s.add(Event(subject=f"episode:{episode}", event=f"{version} {state}", sha256=None, detail=note, at=t))
