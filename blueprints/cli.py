"""Command-line interface: `flask --app app <command>`."""

from __future__ import annotations

import time

import click
from flask import Flask
from sqlalchemy import func, select

from domain.db import db


def register_cli(app: Flask) -> None:
    @app.cli.group("i18n")
    def i18n_group():
        """Message catalogs (translations/)."""

    @i18n_group.command("update")
    def i18n_update():
        """Re-extract every message into the .po files; list how many are untranslated."""
        from blueprints.catalog import update

        for locale, missing in update().items():
            click.echo(f"{locale}: {missing} untranslated")

    @i18n_group.command("compile")
    def i18n_compile():
        """Compile the .po files into .mo (make does this at set-up)."""
        from blueprints.catalog import compile_all

        compile_all()

    @app.cli.command("create-user")
    @click.option("--email", required=True)
    @click.option("--password", required=True)
    @click.option("--role", type=click.Choice(["owner", "staff"]), default="staff")
    @click.option("--name", default="")
    def create_user_command(email, password, role, name):
        """Create a staff or owner account."""
        from domain.accounts import create_user
        from domain.errors import DomainError
        from domain.store import ensure_store_defaults

        ensure_store_defaults()
        try:
            user = create_user(email=email, password=password, role=role, name=name)
        except DomainError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"Created {user.role} {user.email}")

    @app.cli.command("init-store")
    @click.option("--owner-email", default=None,
                  help="Also create this owner account when the store has no account yet.")
    @click.option("--owner-password", default=None)
    def init_store_command(owner_email, owner_password):
        """Create the settings row and built-in payment and shipping methods: an empty
        store (no products, no orders) that the owner sets up in the browser."""
        from domain.accounts import create_user
        from domain.errors import DomainError
        from domain.models import User
        from domain.store import ensure_store_defaults

        ensure_store_defaults()
        click.echo("Store defaults are in place.")
        if owner_email and not db.session.scalar(select(func.count(User.id))):
            try:
                create_user(email=owner_email, password=owner_password or "", role="owner",
                            name="")
            except DomainError as exc:
                raise click.ClickException(str(exc)) from exc
            click.echo(f"Owner login: {owner_email} / {owner_password}")

    @app.cli.command("seed-demo")
    @click.option("--orders", type=click.IntRange(0, 5_000_000), default=2000, show_default=True)
    @click.option("--seed", type=int, default=1, show_default=True)
    @click.option("--if-empty", is_flag=True, help="Do nothing when orders already exist.")
    @click.option("--owner-email", default="owner@example.com", show_default=True)
    @click.option("--owner-password", default="shopdesk-demo", show_default=True)
    def seed_demo_command(orders, seed, if_empty, owner_email, owner_password):
        """Create a demo owner and a realistic, deterministic store with N orders."""
        from domain.accounts import create_user
        from domain.demo import seed_demo
        from domain.models import Order, User
        from domain.store import ensure_store_defaults

        ensure_store_defaults()
        if not db.session.scalar(select(User).where(User.email == owner_email)):
            create_user(email=owner_email, password=owner_password, role="owner",
                        name="Demo Owner")
        if if_empty and db.session.scalar(select(func.count(Order.id))):
            click.echo("Orders already exist; demo data left as it is.")
        else:
            started = time.perf_counter()
            seed_demo(orders, seed)
            click.echo(f"Seeded {orders} orders in {time.perf_counter() - started:.1f}s.")
        click.echo(f"Demo login: {owner_email} / {owner_password}")

    @app.cli.command("backup")
    @click.option("--to", "dest", type=click.Path(file_okay=False), default=None,
                  help="Folder for the archive (default: instance/backups).")
    @click.option("--prune", is_flag=True, help="Then keep only 7 daily and 4 weekly archives.")
    def backup_command(dest, prune):
        """Back up the database and uploads into one verified archive, while the app runs."""
        from domain.backup import BackupError, create_backup, prune_backups

        try:
            result = create_backup(dest)
        except BackupError as exc:
            raise click.ClickException(str(exc)) from exc
        manifest = result.manifest
        click.echo(f"Backed up {manifest['tables'].get('orders', 0)} orders and "
                   f"{len(manifest['files']) - 1} files to {result.path} "
                   f"({result.path.stat().st_size / 1e6:.1f} MB, {result.seconds:.1f}s).")
        for missing in manifest["missing_files"]:
            click.echo(f"Warning: {missing} is named by the database but was not on disk.",
                       err=True)
        if prune:
            for name in prune_backups(dest):
                click.echo(f"Removed {name}")

    @app.cli.command("recount-orders")
    @click.option("--check", "check_only", is_flag=True,
                  help="Only report drift (exit status 1 if any); change nothing.")
    def recount_orders_command(check_only):
        """Check the kept order counts (status tabs, nav badges) against the orders; repair them."""
        from domain.order_counts import recount

        drifts = recount(repair=not check_only)
        for drift in drifts:
            click.echo(("Drift: " if check_only else "Repaired: ") + str(drift))
        if not drifts:
            click.echo("Order counts match the orders.")
        elif check_only:
            raise SystemExit(1)

    @app.cli.command("restore")
    @click.argument("archive", type=click.Path(exists=True, dir_okay=False))
    @click.option("--force", is_flag=True, help="Replace a database that already holds data.")
    def restore_command(archive, force):
        """Verify a backup archive, then restore its database and uploads into this instance."""
        from domain.backup import BackupError, restore_backup

        try:
            report = restore_backup(archive, force=force)
        except BackupError as exc:
            raise click.ClickException(str(exc)) from exc
        counts = report.counts
        click.echo(f"Restored {counts.get('orders', 0)} orders and {report.files} files in "
                   f"{report.seconds:.1f}s; row counts of {len(counts)} tables match the "
                   "manifest.")
        for note in report.notes:
            click.echo(note)
