"""The errors a notebook client raises, so that a program can tell a refusal it can act on
(a locked cell, a read-only role, revoked access) from a connection problem. The cell
errors (`CellConflict`, `CellNotFound`) come from `documents.cells`, shared with REST."""


class ReadOnlyError(PermissionError):
    """This client's role on the document (e.g. viewer) does not allow edits."""


class CellLocked(PermissionError):
    """The cell is locked (metadata `editable`/`deletable` false) and we are not an owner."""


class ChangeRefused(PermissionError):
    """The server refused changes this client had made; they were dropped (see `reasons`)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("the server refused changes: " + "; ".join(reasons))
        self.reasons = reasons


class AccessDenied(PermissionError):
    """No access to the document, or access revoked while connected (HTTP 401/403, 4403)."""


class ClientClosedError(RuntimeError):
    """The client was closed (or gave up); no more operations."""
