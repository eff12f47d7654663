-- product-service: the SKU registry (written with ProductCreated, in one transaction)
-- and the `products` read model (projection `products`, rebuildable from the events).

-- Each SKU belongs to one product forever (a discontinued product keeps its SKU).
CREATE TABLE product_skus (
    sku        text PRIMARY KEY,
    product_id uuid NOT NULL UNIQUE
);

CREATE TABLE products (
    id          uuid          PRIMARY KEY,
    sku         text          NOT NULL,
    name        text          NOT NULL,
    description text          NOT NULL DEFAULT '',
    price       numeric(12,2) NOT NULL,
    currency    char(3)       NOT NULL,
    image_url   text          NOT NULL,
    active      boolean       NOT NULL DEFAULT true,
    created_at  timestamptz   NOT NULL,
    updated_at  timestamptz   NOT NULL,
    version     integer       NOT NULL
);

-- The listing: active products ORDER BY name, id (LIMIT/OFFSET walks this index).
CREATE INDEX products_active_name ON products (name, id) WHERE active;
CREATE INDEX products_sku ON products (sku);

-- Substring search (`q`, ILIKE on name and description) uses trigram indexes where the
-- pg_trgm extension can be had; without it search still works, by scanning.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX products_name_trgm ON products USING gin (name gin_trgm_ops) WHERE active;
    CREATE INDEX products_description_trgm ON products
        USING gin (description gin_trgm_ops) WHERE active;
EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
    RAISE NOTICE 'pg_trgm is not available (%): product search will scan', SQLERRM;
END
$$;
