"""Command-line interface: `flask --app app <command>`."""

from __future__ import annotations

import time

import click
from flask import Flask
from sqlalchemy import func, select

from domain.db import db


def register_cli(app: Flask) -> None:
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
    def init_store_command():
        """Create the settings row and built-in payment and shipping methods."""
        from domain.store import ensure_store_defaults

        ensure_store_defaults()
        click.echo("Store defaults are in place.")

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
