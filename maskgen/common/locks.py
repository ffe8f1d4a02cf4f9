"""One writer per output folder: ``output_lock(folder, command)``.

``maskgen run``, ``maskgen adapt``, ``pretrain run`` and ``evaluate sweep`` hold an exclusive
lock on their output folder for as long as they write to it. The lock is a small JSON file,
``FOLDER/.anaus.lock``, with the host, pid, process start time and command of its holder. It
is created complete or not at all (written beside it, then hard-linked into place, which
fails when a lock already exists), so two writers racing for it cannot both win.

A lock left by a process that died (same host, pid gone or reused) is stale: it is taken over
with a log line. A live holder, or a holder on another host, makes ``output_lock`` raise
``OutputLockedError`` before anything in the folder is touched; its message is one line that
names the holder and says what to do.

While holding the lock a command may tidy the folder: ``remove_stale_temps`` deletes the
temporary files of atomic writes (``maskgen.common.files.atomic_path``) that a killed writer
left behind. A folder the command created itself and left holding nothing but the lock (it
failed before writing anything) is removed again on release.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from maskgen.common.files import remove_stale_temps

log = logging.getLogger(__name__)

LOCK_NAME = ".anaus.lock"


class OutputLockedError(RuntimeError):
    """Another live process holds the output folder's lock."""


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of proc(5), counted after "comm)"


def _alive(pid: int, started: str | None) -> bool:
    """Whether process ``pid`` (started at ``started``, when known) still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    now = _start_time(pid)
    return started is None or now is None or now == started  # a reused pid has another start time


def holder_info(command: str) -> dict:
    """What a lock file records about this process."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _start_time(pid), "command": command,
            "since": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}


def read_lock(folder: str | os.PathLike) -> dict | None:
    """The holder recorded in ``folder``'s lock, None without a lock, {} for an unreadable one."""
    path = Path(folder) / LOCK_NAME
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    return (f"{holder.get('command', '?')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"since {holder.get('since', '?')})")


def _try_create(path: Path, info: dict) -> bool:
    """Create the lock file complete, atomically; False when one exists already."""
    tmp = path.with_name(f"{path.name}.{info['pid']}.{os.urandom(4).hex()}")
    tmp.write_text(json.dumps(info, sort_keys=True) + "\n")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def acquire(folder: str | os.PathLike, command: str) -> Path:
    """Take ``folder``'s lock (creating the folder); returns the lock path.

    Raises:
        OutputLockedError: a live process (or one on another host) holds the lock.
        OSError: the folder cannot be created or written (read-only, full).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path, info = folder / LOCK_NAME, holder_info(command)
    for _ in range(3):
        if _try_create(path, info):
            return path
        holder = read_lock(folder)
        if holder is None:  # released meanwhile
            continue
        if holder and holder.get("host") != info["host"]:
            raise OutputLockedError(
                f"{folder} is in use by {_describe(holder)}; wait for it to finish, or delete "
                f"{path} if that process is gone")
        if holder and _alive(int(holder.get("pid", -1)), holder.get("started")):
            raise OutputLockedError(
                f"{folder} is in use by {_describe(holder)}; wait for it to finish or choose another output")
        log.warning("%s: taking over the stale lock of %s", folder,
                    _describe(holder) if holder else "a process killed while taking it")
        path.unlink(missing_ok=True)
    raise OutputLockedError(f"{folder}: could not take the lock {path} (other writers keep racing for it)")


def release(path: Path) -> None:
    """Remove the lock at ``path`` if this process holds it."""
    holder = read_lock(path.parent)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, command: str, tidy: bool = True,
                disposable: tuple[str, ...] = ()) -> Iterator[Path]:
    """Hold ``folder``'s lock for the block (see the module docstring).

    Args:
        command: what holds it, for the message a second writer gets (e.g. "pretrain run").
        tidy: remove stale temporary files of atomic writes under ``folder`` once the lock is held.
        disposable: names of files that mean nothing without the output (e.g. the command's
            config.toml): a folder this command created that holds only these when the block
            fails is removed with them.
    """
    folder = Path(folder)
    created = not folder.exists()
    path = acquire(folder, command)
    failed = True
    try:
        if tidy:
            for stale in remove_stale_temps(folder):
                log.info("removed %s, left by an interrupted write", stale)
        yield path
        failed = False
    finally:
        release(path)
        if created:
            names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
            if failed and names and names <= set(disposable):
                for name in names:
                    (folder / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when the failed command left the folder empty
