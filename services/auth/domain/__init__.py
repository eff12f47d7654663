"""The pure part of auth: the account events and the rules accounts follow."""

from .model import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    ROLE_ADMIN,
    ROLE_USER,
    UserForgotten,
    UserRegistered,
    normalize_email,
    register,
    upcast_registered_v1,
)

__all__ = [
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "ROLE_ADMIN",
    "ROLE_USER",
    "UserForgotten",
    "UserRegistered",
    "normalize_email",
    "register",
    "upcast_registered_v1",
]
