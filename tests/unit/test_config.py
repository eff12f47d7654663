"""Config from the environment: defaults, parsing, and clear errors."""

from __future__ import annotations

import pytest

from microshop.config import SERVICE_PORTS, Config, ConfigError


def test_defaults_match_the_design() -> None:
    config = Config.from_env({})
    assert config.database_url == "postgresql://127.0.0.1:5432/microshop"
    assert config.amqp_url == "amqp://guest:guest@127.0.0.1:5672/"
    assert config.namespace == "microshop"
    assert config.events_exchange == "microshop.events"
    assert {name: config.port_of(name) for name in SERVICE_PORTS} == {
        name: port for name, (_, port) in SERVICE_PORTS.items()
    }
    assert config.internal_api_key == ""
    assert config.jwt_ttl_seconds == 900


def test_values_are_parsed_and_validated() -> None:
    config = Config.from_env(
        {
            "MICROSHOP_NAMESPACE": "ci-42",
            "PAYMENT_SUCCESS_RATE": "0.25",
            "RELAY_PORT": "9100",
            "ORDER_CONSUMER_RETRY_ATTEMPTS": "5",
            "LOG_LEVEL": "warn",
            "PAYMENT_RANDOM_SEED": "7",
        }
    )
    assert config.queue("orders") == "ci-42.orders"
    assert config.payment_success_rate == 0.25
    assert config.port_of("relay") == 9100
    assert config.order_consumer_retry_attempts == 5
    assert config.log_level == "WARNING"
    assert config.payment_random_seed == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAYMENT_SUCCESS_RATE", "1.5"),
        ("PAYMENT_SUCCESS_RATE", "nan"),
        ("GATEWAY_PORT", "70000"),
        ("MICROSHOP_NAMESPACE", "has space"),
        ("ORDER_CONSUMER_BACKOFF_MULTIPLIER", "0.5"),
        ("ORDER_CONSUMER_RETRY_ATTEMPTS", "0"),
        ("LOG_LEVEL", "LOUD"),
        ("JWT_TTL_SECONDS", "901"),  # access tokens live at most 15 minutes
        ("JWT_TTL_SECONDS", "0"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})


def test_env_vars_cover_every_field() -> None:
    assert "INTERNAL_API_KEY" in Config.ENV_VARS
    assert {env for env, _ in SERVICE_PORTS.values()} <= Config.ENV_VARS
