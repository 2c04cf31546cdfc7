"""Placeholder: being written."""

import click


@click.command("data")
def data() -> None:
    """Not written yet."""
    raise click.ClickException("not written yet")
