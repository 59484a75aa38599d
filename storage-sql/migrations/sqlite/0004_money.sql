-- Money: the commission snapshotted on each order, commission rules, the seller
-- ledger with its balances, and payouts. Amounts are INTEGER minor units beside
-- a currency code, times INTEGER milliseconds, as everywhere else.

-- What an order earns: its commission (fixed at checkout), the end of its return
-- window (set when it is delivered) and when its earning became available.
ALTER TABLE orders ADD COLUMN commission TEXT
    CHECK (commission IS NULL OR json_valid(commission));
ALTER TABLE orders ADD COLUMN return_until INTEGER;
ALTER TABLE orders ADD COLUMN earning_released_at INTEGER;
-- The worker's release round: delivered, unreleased orders, oldest deadline first.
-- Its leading `status` (one value in this index) matches the query's equality,
-- so a planner without statistics (SQLite's) prefers this index to the
-- status listing's, whose order would need sorting.
CREATE INDEX orders_release_due_idx ON orders (status, return_until, id)
    WHERE status = 'delivered' AND earning_released_at IS NULL;

-- One rule per scope: the marketplace default (no target), a category or a
-- seller. `target_key` stands sixteen zero bytes (the nil uuid) in for the
-- default's missing target, so the unique key holds for the default too.
CREATE TABLE commission_rules (
    level       TEXT    NOT NULL CHECK (level IN ('default', 'category', 'seller')),
    target      BLOB    CHECK (length(target) = 16),
    target_key  BLOB    NOT NULL GENERATED ALWAYS AS (COALESCE(target, zeroblob(16))) STORED,
    rate_bps    INTEGER NOT NULL CHECK (rate_bps BETWEEN 0 AND 10000),
    fixed_fee   INTEGER CHECK (fixed_fee >= 0),
    minimum     INTEGER CHECK (minimum >= 0),
    maximum     INTEGER CHECK (maximum >= 0),
    -- The currency of the amounts; NULL when the rule has none.
    currency    TEXT    CHECK (length(currency) = 3),
    updated_at  INTEGER NOT NULL,
    updated_by  BLOB    NOT NULL CHECK (length(updated_by) = 16),
    CONSTRAINT commission_rules_scope_key UNIQUE (level, target_key),
    CHECK ((level = 'default') = (target IS NULL)),
    CHECK (currency IS NOT NULL OR (fixed_fee IS NULL AND minimum IS NULL AND maximum IS NULL))
) STRICT;

CREATE TABLE payouts (
    id               BLOB    PRIMARY KEY CHECK (length(id) = 16),
    seller_id        BLOB    NOT NULL REFERENCES users (id),
    amount           INTEGER NOT NULL CHECK (amount > 0),
    currency         TEXT    NOT NULL CHECK (length(currency) = 3),
    status           TEXT    NOT NULL CHECK (status IN ('requested', 'paid', 'failed',
                         'unresolved')),
    provider         TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL UNIQUE,
    reference        TEXT,
    failure          TEXT,
    requested_by     BLOB    NOT NULL CHECK (length(requested_by) = 16),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX payouts_newest_idx ON payouts (created_at DESC, id DESC);
CREATE INDEX payouts_seller_newest_idx ON payouts (seller_id, created_at DESC, id DESC);
CREATE INDEX payouts_status_newest_idx ON payouts (status, created_at DESC, id DESC);

-- Append-only: never updated or deleted.
CREATE TABLE ledger_entries (
    id          BLOB    PRIMARY KEY CHECK (length(id) = 16),
    seller_id   BLOB    NOT NULL REFERENCES users (id),
    kind        TEXT    NOT NULL CHECK (kind IN ('earning', 'release', 'reversal', 'payout',
                    'payout_failed')),
    currency    TEXT    NOT NULL CHECK (length(currency) = 3),
    pending     INTEGER NOT NULL,
    available   INTEGER NOT NULL,
    commission  INTEGER NOT NULL,
    order_id    BLOB    REFERENCES orders (id),
    payout_id   BLOB    REFERENCES payouts (id),
    created_at  INTEGER NOT NULL
) STRICT;
-- At most one earning, release and reversal per order: the rule itself.
CREATE UNIQUE INDEX ledger_entries_order_kind_key ON ledger_entries (order_id, kind)
    WHERE kind IN ('earning', 'release', 'reversal');
CREATE INDEX ledger_entries_seller_newest_idx ON ledger_entries (seller_id, created_at DESC, id DESC);
CREATE INDEX ledger_entries_newest_idx ON ledger_entries (created_at DESC, id DESC);

-- Each seller's balance per currency: the sum of its entries, written in the
-- same transaction as each entry. The database refuses a bucket below zero
-- (the store maps these two checks to a refused precondition).
CREATE TABLE seller_balances (
    seller_id  BLOB    NOT NULL REFERENCES users (id),
    currency   TEXT    NOT NULL CHECK (length(currency) = 3),
    pending    INTEGER NOT NULL CONSTRAINT seller_balances_pending_check CHECK (pending >= 0),
    available  INTEGER NOT NULL CONSTRAINT seller_balances_available_check CHECK (available >= 0),
    PRIMARY KEY (seller_id, currency)
) STRICT;
