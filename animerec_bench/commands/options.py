"""Options shared by several commands, and loading the plugins they name."""

from __future__ import annotations

import click

# No click ``envvar``: click reads an empty variable as unset, and ``ANIMEREC_BENCH_PLUGINS_DIR=``
# must mean "no loose plugin files" (plugins.resolve_plugins_dir reads it).
plugins_dir_option = click.option(
    "--plugins-dir", type=click.Path(file_okay=False, path_type=str), default=None,
    help="Folder of loose *.py plugin files to import (env: ANIMEREC_BENCH_PLUGINS_DIR; empty: none). "
         "Default: ./plugins, only when the current folder is an animerec-bench checkout.")


def load_plugins(plugins_dir: str | None, *, deadline: float | None = None):
    """Resolve the plugins folder, say on stderr which loose files will run, load the registry.

    With ``deadline`` (seconds), third-party plugins are first imported in a short-lived
    probe process (see ``plugins.probe``), so one that exits or hangs stops with one line
    naming it instead of ending or hanging this command. Returns (registry, resolved folder).
    """
    from ..plugins import load_registry, loose_plugin_files, probe, resolve_plugins_dir

    folder = resolve_plugins_dir(plugins_dir)
    if folder.warning:
        click.echo(f"warning: {folder.warning}", err=True)
    files = loose_plugin_files(folder.path)
    if files:
        click.echo(f"loading plugin files from {folder.path} ({folder.source}): "
                   f"{', '.join(p.name for p in files)}", err=True)
    if deadline is not None:
        probe(folder.path, deadline)
    return load_registry(folder.path), folder.path


publish_option = click.option(
    "--publish", is_flag=True,
    help="Use the published board of this checkout (./results, ./leaderboards) instead of your own in the "
         "data home; an error outside a checkout.")


def results_folder(results_dir: str | None, publish: bool) -> str:
    """Where ``run``/``tune`` write: ``--results``, else ``--publish``'s ``./results``, else the data home's."""
    from .. import paths
    from ..errors import UserError

    if publish and results_dir is not None:
        raise UserError("give either --publish or --results DIR, not both")
    if publish:
        return str(paths.published()[0])
    return results_dir if results_dir is not None else str(paths.results_dir())
