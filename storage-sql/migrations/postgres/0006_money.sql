-- Money: the commission snapshotted on each order, commission rules, the seller
-- ledger with its balances, and payouts. Amounts are bigint minor units beside a
-- currency code, as everywhere else.

-- What an order earns: its commission (fixed at checkout), the end of its return
-- window (set when it is delivered) and when its earning became available.
ALTER TABLE orders
    ADD COLUMN commission          jsonb,
    ADD COLUMN return_until        timestamptz,
    ADD COLUMN earning_released_at timestamptz;
-- The worker's release round: delivered, unreleased orders, oldest deadline first.
-- Its leading `status` (one value in this index) matches the query's equality,
-- so a planner without statistics (SQLite's) prefers this index to the
-- status listing's, whose order would need sorting.
CREATE INDEX orders_release_due_idx ON orders (status, return_until, id)
    WHERE status = 'delivered' AND earning_released_at IS NULL;

-- One rule per scope: the marketplace default (no target), a category or a
-- seller. `target_key` stands the nil uuid in for the default's missing target,
-- so the unique key holds for the default too (and an upsert can name it).
CREATE TABLE commission_rules (
    level       text        NOT NULL CHECK (level IN ('default', 'category', 'seller')),
    target      uuid,
    target_key  uuid        NOT NULL GENERATED ALWAYS AS
                    (COALESCE(target, '00000000-0000-0000-0000-000000000000'::uuid)) STORED,
    rate_bps    bigint      NOT NULL CHECK (rate_bps BETWEEN 0 AND 10000),
    fixed_fee   bigint      CHECK (fixed_fee >= 0),
    minimum     bigint      CHECK (minimum >= 0),
    maximum     bigint      CHECK (maximum >= 0),
    -- The currency of the amounts; NULL when the rule has none.
    currency    text        CHECK (length(currency) = 3),
    updated_at  timestamptz NOT NULL,
    updated_by  uuid        NOT NULL,
    CONSTRAINT commission_rules_scope_key UNIQUE (level, target_key),
    CHECK ((level = 'default') = (target IS NULL)),
    CHECK (currency IS NOT NULL OR (fixed_fee IS NULL AND minimum IS NULL AND maximum IS NULL))
);

CREATE TABLE payouts (
    id               uuid        PRIMARY KEY,
    seller_id        uuid        NOT NULL REFERENCES users (id),
    amount           bigint      NOT NULL CHECK (amount > 0),
    currency         text        NOT NULL CHECK (length(currency) = 3),
    status           text        NOT NULL CHECK (status IN ('requested', 'paid', 'failed',
                         'unresolved')),
    provider         text        NOT NULL,
    idempotency_key  text        NOT NULL CONSTRAINT payouts_idempotency_key_key UNIQUE,
    reference        text,
    failure          text,
    requested_by     uuid        NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
-- Listings, newest first: all, one seller's, one status's.
CREATE INDEX payouts_newest_idx ON payouts (created_at DESC, id DESC);
CREATE INDEX payouts_seller_newest_idx ON payouts (seller_id, created_at DESC, id DESC);
CREATE INDEX payouts_status_newest_idx ON payouts (status, created_at DESC, id DESC);

-- Append-only: never updated or deleted.
CREATE TABLE ledger_entries (
    id          uuid        PRIMARY KEY,
    seller_id   uuid        NOT NULL REFERENCES users (id),
    kind        text        NOT NULL CHECK (kind IN ('earning', 'release', 'reversal', 'payout',
                    'payout_failed')),
    currency    text        NOT NULL CHECK (length(currency) = 3),
    pending     bigint      NOT NULL,
    available   bigint      NOT NULL,
    commission  bigint      NOT NULL,
    order_id    uuid        REFERENCES orders (id),
    payout_id   uuid        REFERENCES payouts (id),
    created_at  timestamptz NOT NULL
);
-- At most one earning, release and reversal per order: the rule itself.
CREATE UNIQUE INDEX ledger_entries_order_kind_key ON ledger_entries (order_id, kind)
    WHERE kind IN ('earning', 'release', 'reversal');
-- Listings, newest first: one seller's (a statement), everyone's (the report).
CREATE INDEX ledger_entries_seller_newest_idx ON ledger_entries (seller_id, created_at DESC, id DESC);
CREATE INDEX ledger_entries_newest_idx ON ledger_entries (created_at DESC, id DESC);

-- Each seller's balance per currency: the sum of its entries, written in the
-- same transaction as each entry. The database refuses a bucket below zero
-- (the store maps these two checks to a refused precondition).
CREATE TABLE seller_balances (
    seller_id  uuid   NOT NULL REFERENCES users (id),
    currency   text   NOT NULL CHECK (length(currency) = 3),
    pending    bigint NOT NULL CONSTRAINT seller_balances_pending_check CHECK (pending >= 0),
    available  bigint NOT NULL CONSTRAINT seller_balances_available_check CHECK (available >= 0),
    PRIMARY KEY (seller_id, currency)
);
