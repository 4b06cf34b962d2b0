"""The one-writer lock of a path store: an exclusive ``fcntl.flock`` on a lock file.

One writer at a time: the writer holds ``fcntl.flock`` on the lock file ``.smem_dask.lock`` (and
writes its pid, host and start time into it, for the message that refuses a second writer). The
kernel releases the lock when its holder ends, however it ends, so a lock left by a killed process
is free at once and the file's contents decide nothing (an empty or garbled file is no obstacle).
The file is removed on release while still locked; a writer that locked a file so removed sees its
inode is no longer the path's and locks the new one. Limitation: on a network file system flock
may be local to one machine (older NFS clients) or unsupported (an error naming the lock file);
two machines writing one store there are not kept apart.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

__all__ = ["FileLock", "StoreLockedError"]


class StoreLockedError(RuntimeError, OSError):
    """Another process is writing the store."""


class FileLock:
    """An exclusive ``flock`` on a lock file, taken without waiting (see the module docstring)."""

    def __init__(self, path: Path, root: Path):
        self.path, self.root = path, root
        self._fd: int | None = None

    def acquire(self) -> None:
        for _ in range(1000):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise self._refusal() from None
                raise OSError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
            except BaseException:
                os.close(fd)
                raise
            if self._is_path(fd):
                self._fd = fd
                self._sign()
                return
            os.close(fd)  # its holder removed that file on release: lock the path's new file
        raise StoreLockedError(f"could not take the lock {self.path}: it keeps being replaced")

    def _is_path(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def _sign(self) -> None:
        """Pid, host and time into the file, for the message that refuses others (nothing depends
        on it: a failure to write it, e.g. on a full disk, leaves the lock held all the same)."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(me).encode(), 0)
        except OSError:
            pass

    def _refusal(self) -> StoreLockedError:
        try:
            holder = json.loads(self.path.read_text())
            who = (f"pid {int(holder['pid'])} on {holder['host']} since "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(float(holder['since'])))}")
        except (OSError, ValueError, TypeError, KeyError):
            who = "another process (it has not written its pid into the lock file yet)"
        return StoreLockedError(f"the path store {self.root} is being written by {who}; wait for it to "
                                "finish, or use another store")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if self._is_path(self._fd):
                self.path.unlink()  # while still locked: a waiting writer then sees a new inode
        except OSError:
            pass  # a lock file left behind is no obstacle: the lock goes with the descriptor
        finally:
            os.close(self._fd)
            self._fd = None
