"""The processes of bench/outbox.py: the counting SMTP server, the workers
(with a thread sampling their memory), and the naive baseline's job.

    python bench/outbox_procs.py --serve-smtp PORT LOG   (started by the bench)
    python bench/outbox_procs.py --worker                (started by the bench)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
MESSAGE_ID = re.compile(rb"^Message-ID:\s*<outbox-(\d+)\.", re.I | re.M)


# ------------------------------------------------------------------ the SMTP server process


def serve_smtp(port: int, log_path: str) -> None:
    """Accept everything; log "<outbox row id> <arrival time>" per message."""
    import asyncio

    from aiosmtpd.controller import Controller

    out = open(log_path, "a", buffering=1)  # noqa: SIM115  (a line per message, flushed)

    class Counting:
        async def handle_DATA(self, server, session, envelope):
            arrived = time.time()
            match = MESSAGE_ID.search(envelope.original_content or envelope.content)
            out.write(f"{match.group(1).decode() if match else '?'} {arrived:.6f}\n")
            return "250 2.0.0 OK"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    controller.stop()
    out.close()
    del asyncio


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SMTPServer:
    def __init__(self, folder: Path):
        self.port = free_port()
        self.log = folder / f"smtp-{self.port}.log"
        self.log.touch()
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-smtp", str(self.port),
             str(self.log)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    def arrivals(self) -> list[tuple[str, float]]:
        lines = self.log.read_text().splitlines()
        return [(row_id, float(at)) for row_id, at in (line.split() for line in lines if line)]

    def count(self) -> int:
        with open(self.log, "rb") as f:
            return sum(1 for _ in f)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# ------------------------------------------------------------------ worker processes


def run_bench_worker() -> None:
    """A worker as ``flask worker --no-sweep`` runs it, with the bench's folders.

    (``flask worker`` takes MAIL_FOLDER and UPLOAD_FOLDER from the instance
    folder, which has no environment setting: the bench must not write ten
    thousand .eml files into the project's instance/.)
    """
    from app import create_app
    from jobs.worker import run_worker

    app = create_app({"MAIL_FOLDER": os.environ["BENCH_MAIL_FOLDER"],
                      "UPLOAD_FOLDER": os.environ["BENCH_UPLOAD_FOLDER"],
                      "GENERATED_FOLDER": os.environ["BENCH_GENERATED_FOLDER"]})
    run_worker(app, sweep=False)


class Workers:
    """W worker processes and a thread sampling their RSS (and their children's)."""

    def __init__(self, count: int, env: dict, redis_conn, folder: Path):
        import psutil

        self.redis = redis_conn
        self.processes = []
        self.logs = []
        for i in range(count):
            log = open(folder / f"worker-{time.monotonic_ns()}-{i}.log", "wb")  # noqa: SIM115
            self.logs.append(log)
            self.processes.append(subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker"], cwd=ROOT, env=env,
                stdout=log, stderr=subprocess.STDOUT))
        self.psutil = [psutil.Process(p.pid) for p in self.processes]
        self.peak_process_mb = 0.0  # the largest single process (worker or work horse)
        self.peak_total_mb = 0.0  # all worker processes together (shared pages counted twice)
        self.peak_worker_mb = 0.0  # the largest worker with its children
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.05):
            total = 0.0
            for parent in self.psutil:
                try:
                    tree = [parent, *parent.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                subtotal = 0.0
                for process in tree:
                    try:
                        rss = process.memory_info().rss / 2**20
                    except psutil.NoSuchProcess:
                        continue
                    self.peak_process_mb = max(self.peak_process_mb, rss)
                    subtotal += rss
                self.peak_worker_mb = max(self.peak_worker_mb, subtotal)
                total += subtotal
            self.peak_total_mb = max(self.peak_total_mb, total)

    def wait_ready(self, timeout: float = 120) -> None:
        from rq import Worker

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.processes:
                if p.poll() is not None:
                    raise RuntimeError(f"worker exited with {p.returncode}")
            workers = Worker.all(connection=self.redis)
            if len(workers) >= len(self.processes) and all(w.get_state() == "idle" for w in workers):
                return
            time.sleep(0.1)
        raise RuntimeError("workers did not start")

    def stop(self) -> None:
        import psutil

        everyone = []
        for parent in self.psutil:
            try:
                everyone += [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)  # warm shutdown: the current job finishes
        _gone, alive = psutil.wait_procs(everyone, timeout=30)
        for process in alive:
            process.kill()
        self._stop.set()
        self._thread.join()
        for log in self.logs:
            log.close()


# ------------------------------------------------------------------ the naive baseline job


def naive_deliver_one() -> dict:
    """Baseline: one RQ job per message (deliver_due with limit=1: its own claim,
    render, SMTP connection and commits)."""
    from flask import current_app

    from domain.notify.delivery import deliver_due
    from domain.notify.transport import MailSettings
    from jobs.outbox import mail_folder
    from jobs.queue import job_app

    with job_app().app_context():
        return deliver_due(MailSettings.from_config(current_app.config), mail_folder(), limit=1)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve-smtp"]:
        serve_smtp(int(argv[1]), argv[2])
    elif argv[:1] == ["--worker"]:
        run_bench_worker()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
