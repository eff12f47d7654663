"""Config from the environment: defaults, parsing, and clear errors."""

from __future__ import annotations

import pytest

from microshop.config import SERVICE_PORTS, Config, ConfigError, Replicas


def test_defaults_match_the_design() -> None:
    config = Config.from_env({})
    assert config.database_url == "postgresql://127.0.0.1:5432/microshop"
    assert config.amqp_url == "amqp://guest:guest@127.0.0.1:5672/"
    assert config.amqp_queue_type == "quorum"
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
        ("ORDER_URL", "order:8004"),
        ("ORDER_URL", "http://a:1,,http://b:2"),
        ("CART_URL", "ftp://cart"),
        ("MICROSHOP_REPLICAS", "0"),
        ("MICROSHOP_REPLICAS", "order=two"),
        ("MICROSHOP_REPLICAS", "shipping=2"),
        ("MICROSHOP_REPLICAS", "51"),
        ("AMQP_QUEUE_TYPE", "stream"),
        ("AMQP_URL", ","),
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


def test_a_service_url_may_list_its_replicas() -> None:
    config = Config.from_env(
        {"ORDER_URL": "http://127.0.0.1:8004/, http://127.0.0.1:8104", "CART_URL": ""}
    )
    assert config.urls_of("order") == ("http://127.0.0.1:8004", "http://127.0.0.1:8104")
    assert config.url_of("order") == "http://127.0.0.1:8004"
    assert config.urls_of("cart") == ("http://127.0.0.1:8003",)


@pytest.mark.parametrize(
    ("raw", "counts"),
    [
        ("1", {"order": 1, "cart": 1}),
        ("3", {"order": 3, "cart": 3, "relay": 3}),
        ("order=3,cart=2", {"order": 3, "cart": 2, "relay": 1}),
        ("2, order=3", {"order": 3, "cart": 2, "gateway": 2}),
        ("order-consumer=2", {"order-consumer": 2, "order": 1}),
    ],
)
def test_replicas_are_counted_per_service(raw: str, counts: dict[str, int]) -> None:
    replicas = Config.from_env({"MICROSHOP_REPLICAS": raw}).replicas
    assert {name: replicas.of(name) for name in counts} == counts
    assert Replicas.parse(str(replicas)) == replicas  # it prints as it parses


def test_a_replica_listens_a_hundred_ports_up() -> None:
    config = Config.from_env({"ORDER_PORT": "9004", "MICROSHOP_REPLICA": "2"})
    assert config.listen_port("order") == 9204
    assert Config.from_env({}).listen_port("order") == 8004


def test_amqp_url_may_list_a_clusters_nodes() -> None:
    config = Config.from_env(
        {"AMQP_URL": " amqp://u:p@n1:5672/v , amqps://u:p@n2/v,", "AMQP_QUEUE_TYPE": "Classic"}
    )
    assert config.amqp_url == "amqp://u:p@n1:5672/v,amqps://u:p@n2/v"
    assert config.amqp_queue_type == "classic"


@pytest.mark.parametrize(
    "wrong", ["http://u:s3cret@n2/", "n2:5672", "amqp://", "amqp:///vhost", "rabbitmq://n2"]
)
def test_each_amqp_url_must_be_amqp_with_a_host_and_no_password_is_shown(wrong: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Config.from_env({"AMQP_URL": f"amqp://u:s3cret@n1/, {wrong}"})
    message = str(refused.value)
    assert message.startswith("invalid configuration: AMQP_URL=<hidden>: each URL must be amqp")
    assert "s3cret" not in message and "n1" not in message
