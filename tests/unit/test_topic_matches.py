"""How a topic exchange matches routing keys: what `events republish` sends a consumer."""

from __future__ import annotations

import pytest

from eventstore.amqp import topic_matches


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("order.OrderPlaced", "order.OrderPlaced", True),
        ("order.OrderPlaced", "order.PaymentSucceeded", False),
        ("order.*", "order.OrderPlaced", True),
        ("order.*", "order", False),
        ("order.*", "order.a.b", False),
        ("*.OrderPlaced", "cart.OrderPlaced", True),
        ("#", "order.OrderPlaced", True),
        ("#", "", True),
        ("order.#", "order", True),
        ("order.#", "order.a.b", True),
        ("order.#", "cart.a", False),
        ("#.Placed", "order.x.Placed", True),
        ("#.Placed", "order.x.Paid", False),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
    ],
)
def test_topic_matches(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected
