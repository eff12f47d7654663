-- cart-service's read model: one row per user, folded from the `cart-{user_id}` streams.
CREATE TABLE carts (
    user_id    text          PRIMARY KEY,
    items      jsonb         NOT NULL DEFAULT '[]',
    total      numeric(12,2) NOT NULL DEFAULT 0,
    currency   text,
    version    integer       NOT NULL,
    updated_at timestamptz   NOT NULL
);
