-- order-service: the `orders` read model, and the placements that make POST /api/orders
-- idempotent (per Idempotency-Key) and keep one cart state from being ordered twice.
CREATE TABLE orders (
    id               uuid          PRIMARY KEY,
    user_id          text          NOT NULL,
    status           text          NOT NULL,
    items            jsonb         NOT NULL,
    total            numeric(12,2) NOT NULL,
    currency         text          NOT NULL,
    payment_round    integer       NOT NULL,
    payment_attempts integer       NOT NULL,
    payment_id       uuid,
    created_at       timestamptz   NOT NULL,
    updated_at       timestamptz   NOT NULL,
    version          integer       NOT NULL
);
CREATE INDEX orders_by_user ON orders (user_id, created_at DESC, id);
CREATE INDEX orders_by_status ON orders (status, updated_at);

CREATE TABLE order_placements (
    order_id        uuid        PRIMARY KEY,
    user_id         text        NOT NULL,
    idempotency_key text,
    cart_version    integer     NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX order_placements_key ON order_placements (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX order_placements_cart ON order_placements (user_id, cart_version);
