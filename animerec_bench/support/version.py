"""The package's version, as setuptools-scm wrote it at install time.

The release, or ``0.1.devN+g<commit>[.d<date>]`` between releases (so every install, a plain
``pip install .`` too, records the commit it was built from); ``0+unknown`` for a source tree
that was never installed.
"""

import importlib.metadata

try:
    __version__ = importlib.metadata.version("animerec-bench")
except importlib.metadata.PackageNotFoundError:
    __version__ = "0+unknown"
