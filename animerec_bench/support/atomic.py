"""Write files so that readers see either the old or the whole new file, never half of one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

#: A temporary's name: ``.<final>.<host tag>-<pid>.<random>.tmp``. The owner (host and pid) lets
#: :func:`sweep_stale_temporaries` tell a live writer's temporary from one a killed process left.
_TEMPORARY_RE = re.compile(r"\.(?P<final>.+)\.(?:(?P<host>[0-9a-f]{8})-)?(?P<pid>[0-9]+)\.[0-9a-f]{8}\.tmp")
#: A temporary older than this is stale whoever made it (a pid can be reused, a host can be another).
STALE_HOURS = 24.0


def _host_tag() -> str:
    """This host and pid namespace (containers on one host can share a name), in 8 hex digits."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha256(f"{socket.gethostname()}/{namespace}".encode()).hexdigest()[:8]


def temporary_sibling(final: Path) -> Path:
    """A fresh hidden name beside ``final`` that records this host and process as its owner."""
    return final.with_name(f".{final.name}.{_host_tag()}-{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place only if the block succeeds.

    Works for a file or a folder. On error (or Ctrl-C) the temporary is removed, so no
    half-written output is ever left under the final name.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(final)
    try:
        yield tmp
        if tmp.is_dir() and final.exists():
            # os.replace cannot replace a non-empty folder: move the old one aside first.
            old = temporary_sibling(final)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def write_text(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":  # elsewhere, signal 0 is not a harmless probe
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def _last_modified(path: Path) -> float:
    """The newest mtime of ``path`` and, for a folder, of the entries directly in it."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        with os.scandir(path) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return newest


def sweep_stale_temporaries(folder: Path | str, max_age_hours: float = STALE_HOURS) -> list[Path]:
    """Remove the temporaries in ``folder`` that no writer will ever rename: their owner process
    died without cleaning up (SIGKILL, SIGTERM, power loss) or they are older than
    ``max_age_hours``. A live process's temporary, on this host or another one sharing the
    folder, is kept until it is that old. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    host, now = _host_tag(), time.time()
    for path in sorted(folder.iterdir()):
        m = _TEMPORARY_RE.fullmatch(path.name)
        if m is None:
            continue
        try:
            dead = m["host"] == host and not _pid_alive(int(m["pid"]))
            if not dead and now - _last_modified(path) < max_age_hours * 3600:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:  # gone already (another sweep), or not ours to remove: leave it
            continue
        removed.append(path)
    return removed
