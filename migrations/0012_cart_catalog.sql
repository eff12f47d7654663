-- cart-service's copy of the catalog, as carts price it (projection `cart_catalog`, folded
-- from the `product-{id}` streams): a cart shows, and an order charges, these prices.
-- `version` is the stream version of the last event folded: a row is current exactly when
-- it equals the stream's, which the cart checks at every read.
CREATE TABLE cart_catalog (
    product_id text          PRIMARY KEY,
    sku        text,
    name       text          NOT NULL,
    price      numeric(12,2) NOT NULL,
    currency   text          NOT NULL,
    active     boolean       NOT NULL,
    version    integer       NOT NULL
);
