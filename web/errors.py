"""How a page handler says it cannot show the page: an error page or a redirect."""

from __future__ import annotations

__all__ = ["PageError", "Redirect"]


class PageError(Exception):
    """Reply with the error page: `status`, a short `title` and what to do about it."""

    def __init__(self, status: int, title: str, message: str = "") -> None:
        super().__init__(f"{status} {title}: {message}")
        self.status = status
        self.title = title
        self.message = message


class Redirect(Exception):
    """Reply with a redirect to `location` (303 See Other unless told otherwise)."""

    def __init__(self, location: str, status: int = 303) -> None:
        super().__init__(location)
        self.location = location
        self.status = status
