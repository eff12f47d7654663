"""Planning replicas: their URLs, their ports, and the connections they need."""

from __future__ import annotations

import pytest

from microshop.config import Config
from microshop.scaling import ADMIN_POOL_SIZE, fitting_pool_size, plan, replica_urls
from microshop.services import available

SERVICES = available()


def test_several_replicas_get_a_url_each_unless_the_environment_names_them() -> None:
    config = Config.from_env({})
    urls = replica_urls(config, {"order": 3, "cart": 1, "product": 2}, {"PRODUCT_URL": "http://p"})
    assert urls == {
        "ORDER_URL": "http://127.0.0.1:8004,http://127.0.0.1:8104,http://127.0.0.1:8204"
    }
    assert Config.from_env(urls).urls_of("order")[2] == "http://127.0.0.1:8204"


def test_replicas_that_would_share_a_port_are_refused() -> None:
    config = Config.from_env({"AUTH_PORT": "8100"})  # gateway replica 1 listens there
    with pytest.raises(ValueError, match="port 8100"):
        replica_urls(config, {"gateway": 2, "auth": 1}, {})
    with pytest.raises(ValueError, match="> 65535"):
        replica_urls(Config.from_env({"ORDER_PORT": "65500"}), {"order": 2}, {})


def test_the_plan_counts_each_process_pool_and_session() -> None:
    config = Config.from_env({"DB_POOL_MAX_SIZE": "4"})
    stack = plan(SERVICES, dict.fromkeys(SERVICES, 2), config)
    by_service = {line.service: line for line in stack.lines}
    assert by_service["order"].total == 2 * (4 + 1)
    assert by_service["gateway"].total == 2 * (ADMIN_POOL_SIZE + 1)
    assert stack.total == 2 * (8 * 5 + ADMIN_POOL_SIZE + 1) and stack.processes == 18


def test_three_replicas_of_everything_fit_a_default_postgres() -> None:
    config = Config.from_env({})
    counts = dict.fromkeys(SERVICES, 3)
    available_connections = 100 - 3 - config.db_connection_reserve
    size = fitting_pool_size(SERVICES, counts, config, available_connections)
    assert size is not None and size >= 2
    fitted = plan(SERVICES, counts, Config.from_env({"DB_POOL_MAX_SIZE": str(size)}))
    assert fitted.total <= available_connections
    too_big = plan(SERVICES, counts, Config.from_env({"DB_POOL_MAX_SIZE": str(size + 1)}))
    assert too_big.total > available_connections  # the largest that fits


def test_behind_pgbouncer_only_the_sessions_reach_postgres() -> None:
    config = Config.from_env(
        {
            "DATABASE_URL": "postgresql://pgbouncer:6432/microshop",
            "DATABASE_DIRECT_URL": "postgresql://postgres:5432/microshop",
            "DB_POOL_MAX_SIZE": "20",
        }
    )
    stack = plan(SERVICES, dict.fromkeys(SERVICES, 5), config)
    assert stack.pooled_elsewhere and stack.total == 5 * len(SERVICES)
