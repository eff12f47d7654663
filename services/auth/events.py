"""auth-service's streams and events in the shared registry."""

from __future__ import annotations

from eventstore import Category, registry

from .domain import UserForgotten, UserRegistered, upcast_registered_v1

__all__ = ["USER_STREAMS"]

USER_STREAMS = Category("user")
"""`user-{user_id}`: one stream per account."""

registry.register_all(UserRegistered, UserForgotten)
registry.upcaster("UserRegistered", from_version=1)(upcast_registered_v1)
