"""Placeholder: being written."""

import click


@click.command("leaderboard")
def leaderboard() -> None:
    """Not written yet."""
    raise click.ClickException("not written yet")
