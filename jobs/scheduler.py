"""RQ's scheduler as the Shopdesk worker runs it: a child that dies with its worker,
and a scheduler lock that a new worker takes over as soon as its holder is gone.

RQ 2.12 runs the scheduler (which moves ``enqueue_at`` jobs, such as the
deadline expiries, onto the queue when due) as a forked child of the worker,
and lets one scheduler per queue hold a Redis lock with a 61-second TTL. Two
defects follow when a worker dies without its teardown (SIGKILL, OOM killer):

- its scheduler child keeps running, an orphan no one will ever stop;
- a worker started next finds the lock taken, runs without a scheduler, and
  tries again only at its next maintenance, ten minutes later.

So the child asks the kernel for SIGTERM when its parent dies (Linux
``PR_SET_PDEATHSIG``) and also checks ``os.getppid()`` on every beat (every
other platform, and the moment between fork and prctl). SIGTERM is RQ's own
graceful stop: the scheduler releases its lock and deregisters within a
second. And before taking the lock, a scheduler clears one whose holder is
provably gone (killed together with its worker, so it could not release it):
its process no longer exists on this host, or it has not beaten for
``STALE_AFTER_SECONDS`` (a live one beats every second).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import sys

import psutil
from redis import Redis
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock
from rq.utils import now, utcparse

log = logging.getLogger(__name__)

STALE_AFTER_SECONDS = 10  # a running scheduler beats every second (interval 1)
BIRTH_GRACE_SECONDS = 5  # a lock without its holder's record: the holder may be forking
_PR_SET_PDEATHSIG = 1


def exit_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies.

    Returns False where that is not available; callers also poll ``os.getppid()``."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _process_gone(pid: int, started_by: float) -> bool:
    """No live process ``pid`` on this host that started before ``started_by``
    (a later one is a reused pid); a zombie counts as gone."""
    try:
        process = psutil.Process(pid)
        return process.status() == psutil.STATUS_ZOMBIE or process.create_time() > started_by
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # e.g. access denied: it exists
        return False


def holder_is_gone(connection: Redis, lock_key: str) -> str | None:
    """The name of the scheduler holding ``lock_key`` if it is provably gone, else None."""
    raw = connection.get(lock_key)
    if raw is None:
        return None
    name = raw.decode() if isinstance(raw, bytes) else str(raw)
    info = {k.decode(): v.decode() for k, v in
            connection.hgetall(SCHEDULER_KEY_TEMPLATE % name).items()}
    if not info:
        # Released its record (or it expired) but not the lock. A worker takes the
        # lock just before its child writes the record: allow that moment.
        ttl = connection.ttl(lock_key)
        full = 60 + 1  # RQ's lock TTL: interval (1 s) + 60
        return name if 0 <= ttl < full - BIRTH_GRACE_SECONDS else None
    try:
        beat = utcparse(info["last_heartbeat"])
        silent = (now() - beat).total_seconds()
        pid = int(info["pid"])
    except (KeyError, ValueError):
        return None
    if silent > STALE_AFTER_SECONDS:
        return name
    if info.get("hostname") == socket.gethostname() and pid and \
            _process_gone(pid, beat.timestamp() + 1):
        return name
    return None


def clear_stale_lock(connection: Redis, lock_key: str) -> bool:
    """Delete ``lock_key`` if its holder is gone; True if it was cleared.

    The delete is RQ's compare-and-delete script: a lock that changed hands
    meanwhile (a live scheduler took it) is left alone."""
    name = holder_is_gone(connection, lock_key)
    if name is None or not release_lock(connection, lock_key, name):
        return False
    log.warning("Cleared the scheduler lock %s held by %s, which is no longer running",
                lock_key, name)
    return True


class ShopdeskScheduler(RQScheduler):
    """RQScheduler whose process stops when its worker dies, and which takes over
    a lock left behind by a scheduler that was killed."""

    _parent_pid: int | None = None

    def acquire_locks(self, auto_start=False):
        for name in self._queue_names:
            clear_stale_lock(self.connection, self.get_locking_key(name))
        return super().acquire_locks(auto_start=auto_start)

    def start(self):
        self._parent_pid = os.getpid()  # the worker; the forked child keeps this value
        return super().start()

    def work(self):
        # In the child, right after the fork. If the worker died before this line,
        # the first heartbeat sees the changed parent.
        exit_with_parent(signal.SIGTERM)
        super().work()

    def heartbeat(self):
        if self._parent_pid is not None and os.getppid() != self._parent_pid:
            self.log.warning("Scheduler: worker %s is gone; stopping", self._parent_pid)
            self.request_stop()
        super().heartbeat()
