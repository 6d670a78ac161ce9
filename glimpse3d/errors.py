"""Exceptions shared by all layers. ``UserError`` means bad input: CLI exit 2, HTTP 4xx."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user; the message is one clear line saying what to do."""

    http_status = 400


class ImageValidationError(UserError):
    """The photo cannot be used. ``rule`` names the failed check (e.g. 'too_small')."""

    http_status = 422

    def __init__(self, rule: str, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        if http_status is not None:
            self.http_status = http_status


class ModelFormatError(UserError):
    """A model file is unreadable or not in the expected format."""

    http_status = 422


class WrongState(UserError):
    """The project is not in a state that allows this action (HTTP 409)."""

    http_status = 409


class Cancelled(Exception):
    """The job was cancelled by the user."""
