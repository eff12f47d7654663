"""MicroShop's shared service kernel: config, app factory, middlewares, CLI, supervisor."""

__version__ = "0.1.0"
