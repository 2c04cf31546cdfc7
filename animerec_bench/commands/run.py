"""Placeholder: being written."""

import click


@click.command("run")
def run() -> None:
    """Not written yet."""
    raise click.ClickException("not written yet")
