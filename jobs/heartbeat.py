"""The worker's heartbeat: the periodic sweep writes the time into Redis.

Web and worker share Redis, so the web side (``/healthz``, the owner's banner)
reads the age with one GET. The value is the worker's wall clock (Unix
seconds); web and worker run on the same host, so their clocks agree.

No expiry on the key: a worker that stopped long ago shows a large age, and a
worker that never ran shows none at all (both count as "not running").
"""

from __future__ import annotations

import time

import redis

HEARTBEAT_KEY = "shopdesk:worker:heartbeat"
STALE_AFTER_SECONDS = 180  # three missed sweeps (one a minute)


def beat(conn: redis.Redis, now: float | None = None) -> None:
    """Record that a worker is alive and running jobs now."""
    conn.set(HEARTBEAT_KEY, f"{time.time() if now is None else now:.3f}")


def age_seconds(conn: redis.Redis, now: float | None = None) -> float | None:
    """Seconds since the last heartbeat, or None when no worker ever beat."""
    raw = conn.get(HEARTBEAT_KEY)
    if raw is None:
        return None
    try:
        beat_at = float(raw)
    except ValueError:  # not ours: treat as never seen
        return None
    return max(0.0, (time.time() if now is None else now) - beat_at)


def is_stale(age: float | None) -> bool:
    return age is None or age > STALE_AFTER_SECONDS
