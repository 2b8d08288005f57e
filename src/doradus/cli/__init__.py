"""The ``doradus`` command line: thin commands over the library.

Example::

    $ doradus run examples/hello-world/dataflow.yml
"""

from __future__ import annotations

from doradus.cli._main import main

__all__ = ["main"]
