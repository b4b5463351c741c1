-- Replicated tables. Every row carries the site that owns it; only that site writes it.
-- The key is a UUIDv7 minted at the owning site; (site, id) is the primary key so the
-- publication row filter on site is covered by the replica identity.
CREATE TABLE IF NOT EXISTS customers (
    id         uuid        NOT NULL,
    site       text        NOT NULL,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, id)
);
CREATE TABLE IF NOT EXISTS orders (
    id          uuid        NOT NULL,
    site        text        NOT NULL,
    customer_id uuid,
    amount      numeric(12,2) NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, id)
);
-- Written by `sitectl drill`: each drill run writes site-owned rows on both sides of a
-- cut and verifies every acknowledged write reached every site exactly once.
CREATE TABLE IF NOT EXISTS sitectl_drill (
    id         uuid        NOT NULL,
    site       text        NOT NULL,
    run        text        NOT NULL,
    seq        integer     NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, id)
);
-- The API's own rows (POST /rows of the lab's Django API; not replicated). The API
-- connects as its own role (postgres.app_user), which has no DDL: sitectl makes the
-- table here, the role gets SELECT, INSERT, UPDATE, DELETE on it.
CREATE TABLE IF NOT EXISTS lab_rows (
    id         uuid        NOT NULL,
    site       text        NOT NULL,
    body       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, id)
);
