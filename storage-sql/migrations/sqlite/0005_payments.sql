-- Payments: one per checkout, written with its orders and changed in
-- conditional steps on `version`. The columns are what the queries and the
-- conditional write need; `doc` holds the whole record (refunds and all), which
-- is what the store reads back. Every write sets both from the same record.
-- Times are INTEGER milliseconds, as everywhere else.
CREATE TABLE payments (
    id           BLOB    PRIMARY KEY CHECK (length(id) = 16),
    checkout_id  BLOB    NOT NULL UNIQUE REFERENCES checkouts (id),
    buyer_id     BLOB    NOT NULL REFERENCES users (id),
    provider     TEXT    NOT NULL,
    -- The provider's reference, once created there: unique per provider.
    reference    TEXT,
    status       TEXT    NOT NULL CHECK (status IN ('awaiting_payment', 'authorized',
                     'capturing', 'captured', 'partially_refunded', 'refunded', 'failed',
                     'voided')),
    -- When the payment worker looks at it next; NULL when nothing is left to do.
    due_at       INTEGER,
    version      INTEGER NOT NULL CHECK (version >= 0),
    created_at   INTEGER NOT NULL,
    doc          TEXT    NOT NULL CHECK (json_valid(doc))
) STRICT;
-- A provider's webhook names the payment by its reference.
CREATE UNIQUE INDEX payments_provider_reference_key ON payments (provider, reference)
    WHERE reference IS NOT NULL;
-- The worker's round: due payments, earliest first.
CREATE INDEX payments_due_idx ON payments (due_at, id) WHERE due_at IS NOT NULL;
-- Listings, newest first: all, one status's, one buyer's.
CREATE INDEX payments_newest_idx ON payments (created_at DESC, id DESC);
CREATE INDEX payments_status_newest_idx ON payments (status, created_at DESC, id DESC);
CREATE INDEX payments_buyer_newest_idx ON payments (buyer_id, created_at DESC, id DESC);

-- The providers' events already handled, so a repeated webhook is not.
CREATE TABLE payment_events (
    provider    TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    handled_at  INTEGER NOT NULL,
    PRIMARY KEY (provider, event_id)
) STRICT;
