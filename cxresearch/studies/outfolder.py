"""The out folder of ``cxresearch run``: checked before any kernel starts, locked while a command writes
to it, and cleaned of what an earlier, killed command left behind.

- :func:`check_out_folder`: the folder is created when missing; a path that is a file, or a folder
  that cannot be created or written, is one :class:`OutFolderError` naming the path and where it came
  from (``--out`` or the params file's ``out`` key).
- :class:`OutFolderLock`: ``<out>/.cxresearch.lock`` (``filelock``: an OS lock, released by the OS
  when the holder dies, also on SIGKILL) plus ``<out>/.cxresearch.lock.json`` naming the holder (pid,
  host, start time, command) for the message a second command prints.
- :func:`sweep_stale`: with the lock held, nothing else writes here, so every ``running`` manifest
  belongs to a command that was killed: it becomes ``interrupted`` (the next run redoes it), and the
  hidden temporary files of that command go. Only run folders (a cxresearch manifest inside) are looked
  at, and only the exact names the runner writes are removed: a user's own files stay.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cxresearch.results import write_json_atomic
from cxresearch.studies.manifest import MANIFEST_NAME

LOCK_NAME = ".cxresearch.lock"
LOCK_INFO_NAME = ".cxresearch.lock.json"
#: A run id (``runner.new_run_id``): UTC time plus six hex digits.
_RUN_ID = r"\d{8}T\d{6}Z-[0-9a-f]{6}"
#: The exact names of the hidden temporary files the runner writes in a run folder: papermill's notebook
#: (``.<notebook>.<run id>.partial.ipynb``), the kernel log (``.kernel.log.<run id>.partial``), the results
#: (``.results.<run id>.json``) and ``results.write_text_atomic``'s ``.<name>.<pid>.<8 hex>.tmp``. Nothing
#: else is ever removed, so a user's own hidden files in an out folder are safe.
_STALE = re.compile(rf"^\.(?:.+\.{_RUN_ID}\.partial(?:\.ipynb)?|results\.{_RUN_ID}\.json|.+\.\d+\.[0-9a-f]{{8}}\.tmp)$")


def _is_run_folder(folder: Path) -> bool:
    """A folder the runner made: it holds a cxresearch manifest (``schema`` and ``run_id`` keys)."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "schema" in manifest and "run_id" in manifest


class OutFolderError(RuntimeError):
    """The out folder cannot be used (a file, not writable, locked by another command)."""


def check_out_folder(path: Path, where: str) -> None:
    """Create ``path`` when missing and check that files can be written in it.

    ``where`` says where the path came from (``--out`` or ``<params file>: out``) and starts the message.
    """
    existing = path
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        if existing == path:
            raise OutFolderError(f"{where}: {path} is a file, not a folder (out is the folder that receives reports)")
        raise OutFolderError(f"{where}: {path}: {existing} is a file, so no folder can be created below it")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutFolderError(f"{where}: cannot create the folder {path}: {exc.strerror or exc}") from None
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".cxresearch-probe-", suffix=".tmp"):
            pass
    except OSError as exc:
        raise OutFolderError(f"{where}: cannot write to the folder {path}: {exc.strerror or exc}") from None


def _holder_text(info: Any) -> str:
    if not isinstance(info, dict):
        return "another `cxresearch run`"
    parts = [f"pid {info.get('pid')}"]
    if info.get("host") and info.get("host") != socket.gethostname():
        parts.append(f"on {info['host']}")
    if info.get("started_at"):
        parts.append(f"since {info['started_at']}")
    return f"another `cxresearch run` ({', '.join(parts)})"


class OutFolderLock:
    """An exclusive lock on one out folder for the length of one ``cxresearch run`` command."""

    def __init__(self, folder: Path) -> None:
        from filelock import FileLock

        self.folder = folder
        self.path = folder / LOCK_NAME
        self.info_path = folder / LOCK_INFO_NAME
        self._lock = FileLock(str(self.path))

    def holder(self) -> Any:
        """What the holder wrote about itself (None when unreadable)."""
        try:
            return json.loads(self.info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def acquire(self, wait: bool = False, say: Any = None) -> None:
        """Take the lock; without ``wait`` raise :class:`OutFolderError` at once when another command holds
        it, with ``wait`` say so (``say``) and wait for it."""
        from filelock import Timeout

        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            holder = _holder_text(self.holder())
            if not wait:
                raise OutFolderError(
                    f"{self.folder}: {holder} is writing to this folder; wait for it to finish, "
                    "or add --wait to start when it has"
                ) from None
            if say is not None:
                say(f"waiting: {holder} is writing to {self.folder}")
            while True:
                try:
                    self._lock.acquire(timeout=1)
                    break
                except Timeout:
                    time.sleep(0.1)
        except OSError as exc:
            raise OutFolderError(f"{self.folder}: cannot lock the folder ({self.path}): {exc.strerror}") from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": sys.argv,
        }
        try:
            write_json_atomic(self.info_path, info)
        except OSError:
            pass  # the lock itself holds; only the message of a second command gets vaguer

    def release(self) -> None:
        try:
            self.info_path.unlink(missing_ok=True)
        except OSError:
            pass
        self._lock.release()


def sweep_stale(folder: Path) -> list[str]:
    """With the lock held: mark ``running`` manifests ``interrupted`` and remove hidden temporary files
    left by a killed command. Returns one note per run folder it changed."""
    notes = []
    for run_dir in sorted(p for p in folder.glob("*/*") if p.is_dir() and _is_run_folder(p)):
        removed = []
        for item in run_dir.iterdir():
            if _STALE.match(item.name) and item.is_file():
                try:
                    item.unlink()
                    removed.append(item.name)
                except OSError:
                    pass
        marked = False
        manifest_path = run_dir / MANIFEST_NAME
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = None
        if isinstance(manifest, dict) and manifest.get("status") == "running":
            manifest["status"] = "interrupted"
            manifest["error"] = {
                "kind": "interrupted",
                "ename": "Interrupted",
                "message": "the command running this notebook stopped before it finished (killed?); "
                "the next `cxresearch run` runs it again",
            }
            try:
                write_json_atomic(manifest_path, manifest)
                marked = True
            except OSError:
                pass
        if removed or marked:
            what = []
            if marked:
                what.append("marked interrupted (it was left running)")
            if removed:
                what.append(f"removed {len(removed)} leftover temporary files")
            notes.append(f"{run_dir.relative_to(folder).as_posix()}: an earlier command was killed: {', '.join(what)}")
    return notes
