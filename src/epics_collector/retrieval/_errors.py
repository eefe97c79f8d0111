"""The one error a request can get: a 4xx (or 503) with a one-line reason."""

from __future__ import annotations


class RequestError(ValueError):
    """A request that cannot be answered; ``status`` is its HTTP status."""

    def __init__(self, text: str, status: int = 400) -> None:
        super().__init__(text)
        self.status = status
