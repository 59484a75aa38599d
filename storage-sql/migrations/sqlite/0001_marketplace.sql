-- The marketplace schema for SQLite.
--
-- STRICT tables, so a value of the wrong type is refused. Ids are 16-byte UUID
-- blobs (they sort like PostgreSQL's uuid), times are INTEGER milliseconds since
-- the Unix epoch (UTC; they sort correctly), money is INTEGER minor units plus a
-- currency code, booleans are 0/1, and order snapshots are JSON text.
--
-- SQLite's lower() folds ASCII only, so case-insensitive rules (category names,
-- catalog search) use `*_folded` columns the backend fills with Unicode
-- lower-casing; the unique index still sits in the database.

CREATE TABLE users (
    id              BLOB    PRIMARY KEY CHECK (length(id) = 16),
    email           TEXT    NOT NULL,
    password_hash   TEXT    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('buyer', 'seller', 'admin')),
    name            TEXT,
    phone           TEXT,
    store_name      TEXT,
    seller_status   TEXT    CHECK (seller_status IN ('pending', 'verified', 'rejected')),
    email_verified  INTEGER NOT NULL CHECK (email_verified IN (0, 1)),
    active          INTEGER NOT NULL CHECK (active IN (0, 1)),
    created_at      INTEGER NOT NULL
) STRICT;
-- Emails are ASCII (core validates them) and lower-cased, so lower() suffices.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_sellers_idx ON users (seller_status, id) WHERE seller_status IS NOT NULL;
CREATE INDEX users_all_sellers_idx ON users (id) WHERE seller_status IS NOT NULL;

CREATE TABLE one_time_tokens (
    hash        TEXT    PRIMARY KEY,
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT    NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    used        INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1))
) STRICT;
CREATE INDEX one_time_tokens_user_idx ON one_time_tokens (user_id);

CREATE TABLE refresh_tokens (
    hash        TEXT    PRIMARY KEY,
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family      BLOB    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('live', 'spent', 'revoked')),
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE login_failures (
    key             TEXT    PRIMARY KEY,
    count           INTEGER NOT NULL CHECK (count > 0),
    window_started  INTEGER NOT NULL
) STRICT;

CREATE TABLE addresses (
    -- Insertion order (an explicit rowid, stable across VACUUM): oldest first.
    seq          INTEGER PRIMARY KEY,
    id           BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
    user_id      BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    line1        TEXT    NOT NULL,
    line2        TEXT,
    city         TEXT    NOT NULL,
    region       TEXT,
    postal_code  TEXT    NOT NULL,
    country      TEXT    NOT NULL,
    phone        TEXT,
    is_default   INTEGER NOT NULL CHECK (is_default IN (0, 1))
) STRICT;
CREATE INDEX addresses_user_idx ON addresses (user_id, seq);
CREATE UNIQUE INDEX addresses_one_default_key ON addresses (user_id) WHERE is_default = 1;

CREATE TABLE categories (
    id           BLOB PRIMARY KEY CHECK (length(id) = 16),
    name         TEXT NOT NULL,
    name_folded  TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX categories_name_key ON categories (name_folded);

CREATE TABLE products (
    id                  BLOB    PRIMARY KEY CHECK (length(id) = 16),
    seller_id           BLOB    NOT NULL REFERENCES users (id),
    title               TEXT    NOT NULL,
    description         TEXT    NOT NULL,
    title_folded        TEXT    NOT NULL,
    description_folded  TEXT    NOT NULL,
    price_amount        INTEGER NOT NULL CHECK (price_amount >= 0),
    currency            TEXT    NOT NULL CHECK (length(currency) = 3),
    discount            TEXT    CHECK (discount IS NULL OR json_valid(discount)),
    stock               INTEGER NOT NULL CHECK (stock >= 0),
    images              TEXT    NOT NULL CHECK (json_valid(images)),
    -- A category in use cannot be deleted (NO ACTION).
    category_id         BLOB    REFERENCES categories (id),
    active              INTEGER NOT NULL CHECK (active IN (0, 1)),
    archived            INTEGER NOT NULL CHECK (archived IN (0, 1)),
    blocked             INTEGER NOT NULL CHECK (blocked IN (0, 1)),
    version             INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;
CREATE INDEX products_newest_idx ON products (created_at DESC, id DESC);
CREATE INDEX products_price_idx ON products (price_amount, id);
CREATE INDEX products_seller_newest_idx ON products (seller_id, created_at DESC, id DESC);
CREATE INDEX products_seller_price_idx ON products (seller_id, price_amount, id);
CREATE INDEX products_category_newest_idx ON products (category_id, created_at DESC, id DESC);
CREATE INDEX products_category_price_idx ON products (category_id, price_amount, id);

CREATE TABLE carts (
    buyer_id  BLOB    PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    version   INTEGER NOT NULL CHECK (version >= 0),
    lines     TEXT    NOT NULL CHECK (json_valid(lines))
) STRICT;

CREATE TABLE wishlist_entries (
    seq         INTEGER PRIMARY KEY,
    buyer_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    product_id  BLOB    NOT NULL REFERENCES products (id),
    added_at    INTEGER NOT NULL,
    UNIQUE (buyer_id, product_id)
) STRICT;
CREATE INDEX wishlist_entries_newest_idx ON wishlist_entries (buyer_id, seq DESC);

CREATE TABLE checkouts (
    id               BLOB    PRIMARY KEY CHECK (length(id) = 16),
    buyer_id         BLOB    NOT NULL REFERENCES users (id),
    idempotency_key  TEXT    NOT NULL,
    request_hash     TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    CONSTRAINT checkouts_buyer_key_key UNIQUE (buyer_id, idempotency_key)
) STRICT;

CREATE TABLE orders (
    id            BLOB    PRIMARY KEY CHECK (length(id) = 16),
    checkout_id   BLOB    NOT NULL REFERENCES checkouts (id),
    buyer_id      BLOB    NOT NULL REFERENCES users (id),
    seller_id     BLOB    NOT NULL REFERENCES users (id),
    store_name    TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'accepted', 'packed',
                      'shipped', 'delivered', 'cancelled', 'return_requested', 'returned')),
    items         TEXT    NOT NULL CHECK (json_valid(items)),
    address       TEXT    NOT NULL CHECK (json_valid(address)),
    total_amount  INTEGER NOT NULL CHECK (total_amount >= 0),
    currency      TEXT    NOT NULL CHECK (length(currency) = 3),
    history       TEXT    NOT NULL CHECK (json_valid(history)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX orders_checkout_idx ON orders (checkout_id, seller_id);
CREATE INDEX orders_newest_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_status_newest_idx ON orders (status, created_at DESC, id DESC);
CREATE INDEX orders_buyer_newest_idx ON orders (buyer_id, created_at DESC, id DESC);
CREATE INDEX orders_seller_newest_idx ON orders (seller_id, created_at DESC, id DESC);
CREATE INDEX orders_seller_status_newest_idx ON orders (seller_id, status, created_at DESC, id DESC);

CREATE TABLE outbox (
    id               BLOB    PRIMARY KEY CHECK (length(id) = 16),
    kind             TEXT    NOT NULL,
    recipient        TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    text_body        TEXT    NOT NULL,
    html_body        TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    claimed_by       BLOB,
    claimed_until    INTEGER
) STRICT;
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_newest_idx ON outbox (created_at DESC, id DESC);
CREATE INDEX outbox_status_newest_idx ON outbox (status, created_at DESC, id DESC);
CREATE INDEX outbox_claimed_by_idx ON outbox (claimed_by) WHERE claimed_by IS NOT NULL;
