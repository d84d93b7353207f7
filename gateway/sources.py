"""Read messages to import from a path: one .eml, an mbox file, a Maildir or a folder of .eml.

Yields (label, raw bytes); the label names the file (and the message number in
an mbox) so that every report can point at its source.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import InputError


@dataclass(frozen=True)
class MessageSource:
    path: Path
    kind: str  # eml | mbox | maildir | eml-folder
    count: int

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        if self.kind == "eml":
            yield str(self.path), _read(self.path)
        elif self.kind == "eml-folder":
            for file in _eml_files(self.path):
                yield str(file), _read(file)
        elif self.kind == "mbox":
            box = mailbox.mbox(self.path, create=False)
            try:
                for number, key in enumerate(box.keys(), start=1):
                    yield f"{self.path}#{number}", box.get_bytes(key)
            finally:
                box.close()
        else:
            folder = mailbox.Maildir(self.path, factory=None, create=False)
            for key in sorted(folder.keys()):
                yield f"{self.path} [{key}]", folder.get_bytes(key)


def open_source(path: Path) -> MessageSource:
    if not path.exists():
        raise InputError(str(path), "no such file or directory")
    if path.is_dir():
        if any((path / sub).is_dir() for sub in ("cur", "new")):
            folder = mailbox.Maildir(path, factory=None, create=False)
            return MessageSource(path, "maildir", len(folder.keys()))
        files = _eml_files(path)
        if not files:
            raise InputError(str(path), "not a Maildir (no cur/ or new/) and holds no .eml files")
        return MessageSource(path, "eml-folder", len(files))
    with path.open("rb") as handle:
        head = handle.read(5)
    if head == b"From ":
        box = mailbox.mbox(path, create=False)
        try:
            count = len(box.keys())
        finally:
            box.close()
        return MessageSource(path, "mbox", count)
    return MessageSource(path, "eml", 1)


def _eml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".eml")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror}") from exc
