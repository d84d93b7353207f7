"""What a sync pass and an audit found, per folder (the CLI and the logs show them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FolderReport:
    role: str
    name: str
    scanned: int = 0
    matched: int = 0
    fetched: int = 0
    uidvalidity_changed: bool = False


@dataclass
class AuditFolder:
    role: str
    name: str
    on_server: int = 0  # messages within the window
    involving_contacts: int = 0
    missing: int = 0  # involving a contact, never stored
    repaired: int = 0


@dataclass
class SyncReport:
    folders: list[FolderReport] = field(default_factory=list)

    @property
    def fetched(self) -> int:
        return sum(f.fetched for f in self.folders)

    @property
    def scanned(self) -> int:
        return sum(f.scanned for f in self.folders)

    @property
    def matched(self) -> int:
        return sum(f.matched for f in self.folders)
