"""The ``animerec-bench`` command line (click). Heavy imports happen inside commands."""

from __future__ import annotations

import click

from animerec_bench.commands.compare import compare
from animerec_bench.commands.data import data
from animerec_bench.commands.fit import fit
from animerec_bench.commands.leaderboard import leaderboard
from animerec_bench.commands.listing import list_
from animerec_bench.commands.recommend import recommend
from animerec_bench.commands.run import run
from animerec_bench.commands.tune import tune
from animerec_bench.errors import UserError
from animerec_bench.support.version import __version__


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on (NUL, ESC sequences, other control
    characters) written as its Python escape: a message quotes bytes from the user's files."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _UserFacingError(click.ClickException):
    """A :class:`UserError` shown as ``Error: <one line>`` with exit status 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise _UserFacingError(str(exc)) from None
        except BrokenPipeError:  # output piped into `head`: not an error of ours or the user's
            raise
        except OSError as exc:  # a folder that cannot be made or written (--out, --results, home)
            where = f"{exc.filename}: " if exc.filename else ""
            raise _UserFacingError(f"{where}{exc.strerror or exc}") from None


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="animerec-bench")
def cli() -> None:
    """Benchmark recommender models on MyAnimeList data: honest numbers, fast runs."""


cli.add_command(run)
cli.add_command(list_)
cli.add_command(leaderboard)
cli.add_command(data)
cli.add_command(tune)
cli.add_command(compare)
cli.add_command(fit)
cli.add_command(recommend)


def main() -> None:
    cli(prog_name="animerec-bench")
