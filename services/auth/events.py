"""auth-service's events in the shared registry."""

from eventstore import registry

from .domain import UserRegistered

registry.register(UserRegistered)
