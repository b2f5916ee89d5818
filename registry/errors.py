"""Errors a user can meet. Each is one class with one message naming the file and the fix.

The CLI prints `str(error)` as a paragraph and exits with `error.exit_code`; never a traceback.
Like huggingface_hub's errors, each carries the facts it is about as fields (`key`, `path`,
`licence`, `url`, ...), so `--json` errors are structured: `{"error", "message", "exit_code", **fields}`.
"""

from __future__ import annotations

from typing import Any


class RegError(Exception):
    """Base of every user-facing error. `raise SomeError("paragraph", key=..., path=...)`."""

    exit_code = 1

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.fields = {
            name: str(value) if hasattr(value, "__fspath__") else value
            for name, value in fields.items()
            if value is not None
        }

    def to_json(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "message": str(self), "exit_code": self.exit_code, **self.fields}


class DatabaseError(RegError):
    """The registry database cannot be opened, read or written (permissions, server, credentials)."""


class NotWritableError(RegError):
    """The registry (its database, store or a pipeline path) cannot be written by this user."""


class ManifestError(RegError):
    """A manifest file is malformed: names the file, the key and what is wrong."""


class UnknownKeyError(RegError):
    """An asset, licence, pipeline or episode key is not in the catalog."""


class IdentifyError(RegError):
    """`reg add` could not tell which catalogued asset a file is."""


class IntegrityError(RegError):
    """A file's size or sha256 differs from what the catalog or registry pins."""


class ValidationError(RegError):
    """A file's structure is not what the pipeline loads (wrong keys, shapes, layout)."""


class UnsafeFileError(ValidationError):
    """A file would execute code if loaded (a pickle reaching for a forbidden global)."""


class PlacementConflict(RegError):
    """A different file already sits at the pipeline path."""


class BlockedError(RegError):
    """Something the user asked for is blocked (`status --strict`, the render gate)."""

    exit_code = 3


class RenderBusyError(RegError):
    """Another process holds the render lock of this episode version."""


class RenderFailedError(RegError):
    """A render ran and did not succeed (a step failed, timed out, or was cancelled)."""

    exit_code = 4


class VerifyFailedError(RegError):
    """`reg verify` found a changed or missing file."""
