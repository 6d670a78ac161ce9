"""The ``glimpse3d`` command line: a thin Typer layer over the library.

One module per group of commands, each a plain function registered here:
``run`` (:mod:`glimpse3d.cli.run`), ``render``/``export`` (:mod:`glimpse3d.cli.model`),
``serve``/``worker``/``doctor``/``cleanup`` (:mod:`glimpse3d.cli.service`) and the ``db``
and ``keys`` sub-apps (:mod:`glimpse3d.cli.db`, :mod:`glimpse3d.cli.keys`). A new group is a
module with its own ``typer.Typer`` added below with ``app.add_typer``.

Exit codes: 0 success, 2 bad input (one-line reason on stderr), 1 internal failure.
Heavy modules are imported inside each command so ``glimpse3d --help`` stays fast.
"""

from __future__ import annotations

import typer

from glimpse3d.cli import db, keys, model, service
from glimpse3d.cli import run as run_module
from glimpse3d.cli._common import console, handle_errors

app = typer.Typer(
    name="glimpse3d",
    help="One photo in, a refined 3D Gaussian-splat model out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("run")(run_module.run)
app.command("render")(model.render)
app.command("export")(model.export)
app.command("serve")(service.serve)
app.command("worker")(service.worker)
app.command("doctor")(service.doctor)
app.command("cleanup")(service.cleanup)
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")

__all__ = ["app", "console", "handle_errors"]

if __name__ == "__main__":  # pragma: no cover
    app()
