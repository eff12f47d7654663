"""The pure part of auth: the registration event and the rules accounts follow."""

from .model import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    ROLE_ADMIN,
    ROLE_USER,
    UserRegistered,
    normalize_email,
    register,
)

__all__ = [
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "ROLE_ADMIN",
    "ROLE_USER",
    "UserRegistered",
    "normalize_email",
    "register",
]
