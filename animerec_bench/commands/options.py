"""Options shared by several commands."""

import click

plugins_dir_option = click.option(
    "--plugins-dir", type=click.Path(file_okay=False, path_type=str), default=None,
    envvar="ANIMEREC_BENCH_PLUGINS_DIR", show_envvar=True,
    help="Folder of loose *.py plugin files (default: ./plugins).")
