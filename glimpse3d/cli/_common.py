"""What every ``glimpse3d`` command shares: the stderr console and the error boundary.

Exit codes: 0 success, 2 bad input (one-line reason on stderr), 1 internal failure,
130 interrupted.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

console = Console(stderr=True)


def fail(code: int, message: str) -> None:
    """Print ``error: message`` on one line and exit with ``code``."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map exceptions to the documented exit codes with a one-line message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from glimpse3d.errors import UserError

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except UserError as exc:
            fail(2, str(exc))
        except ValidationError as exc:  # a GLIMPSE3D_* setting has a bad value
            problems = "; ".join(
                f"GLIMPSE3D_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
            )
            fail(2, f"invalid setting: {problems}")
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            fail(2, f"{exc.strerror or exc}: {exc.filename}")
        except KeyboardInterrupt:
            fail(130, "interrupted")
        except Exception as exc:  # noqa: BLE001 - last-resort boundary of the CLI
            if "--debug" in sys.argv:
                raise
            fail(1, f"internal error: {type(exc).__name__}: {exc}")

    return wrapper
