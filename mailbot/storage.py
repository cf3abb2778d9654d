"""A TinyDB storage that keeps the record in memory and writes it atomically.

TinyDB rewrites its whole file on every change. Here changes stay in memory
until `flush()`, which mailbot calls once per handled message or sweep, and
the file is replaced in one step (temporary file, fsync, rename), so a
crash leaves either the old record or the new one, never half of each.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from mailbot.errors import MailbotError


class DamagedRecordError(MailbotError):
    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"{path} is damaged ({detail}); "
                         "restore it from a backup before starting mailbot")


class BufferedJSONStorage(Storage):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._data: dict[str, dict[str, Any]] | None = None
        self._dirty = False

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._data is None:
            self._data = self._load()
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self._data = data
        self._dirty = True

    def flush(self) -> None:
        if not self._dirty or self._data is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".mailbot-",
                                   suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self._data, out, ensure_ascii=False,
                          separators=(",", ":"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._dirty = False

    def discard(self) -> None:
        """Forget unflushed changes: the next read loads the file again."""
        self._data = None
        self._dirty = False

    def close(self) -> None:
        self.flush()

    def _load(self) -> dict[str, dict[str, Any]] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DamagedRecordError(self.path, str(exc)) from exc
        if not isinstance(data, dict):
            raise DamagedRecordError(self.path, "not a JSON object")
        return data
