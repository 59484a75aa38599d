-- The marketplace schema for PostgreSQL.
--
-- Money is BIGINT minor units plus an ISO currency code; ids are native UUIDs;
-- times are timestamptz. Order snapshots (items, address, history) are jsonb: they
-- are read and written whole, never queried inside. Every invariant the database
-- can keep is a constraint here, so no writer (including a buggy one) breaks it.

CREATE TABLE users (
    id              uuid        PRIMARY KEY,
    email           text        NOT NULL,
    password_hash   text        NOT NULL,
    role            text        NOT NULL CHECK (role IN ('buyer', 'seller', 'admin')),
    name            text,
    phone           text,
    store_name      text,
    seller_status   text        CHECK (seller_status IN ('pending', 'verified', 'rejected')),
    email_verified  boolean     NOT NULL,
    active          boolean     NOT NULL,
    created_at      timestamptz NOT NULL
);
-- Emails are unique case-insensitively (core lower-cases them; the index makes sure).
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
-- Admin listing of sellers: by id, optionally of one status.
CREATE INDEX users_sellers_idx ON users (seller_status, id) WHERE seller_status IS NOT NULL;
CREATE INDEX users_all_sellers_idx ON users (id) WHERE seller_status IS NOT NULL;

CREATE TABLE one_time_tokens (
    hash        text        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text        NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    used        boolean     NOT NULL DEFAULT false
);
CREATE INDEX one_time_tokens_user_idx ON one_time_tokens (user_id);

CREATE TABLE refresh_tokens (
    hash        text        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family      uuid        NOT NULL,
    state       text        NOT NULL CHECK (state IN ('live', 'spent', 'revoked')),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE login_failures (
    key             text        PRIMARY KEY,
    count           bigint      NOT NULL CHECK (count > 0),
    window_started  timestamptz NOT NULL
);

CREATE TABLE addresses (
    id           uuid    PRIMARY KEY,
    user_id      uuid    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Insertion order: addresses are listed oldest first.
    seq          bigint  GENERATED ALWAYS AS IDENTITY,
    name         text    NOT NULL,
    line1        text    NOT NULL,
    line2        text,
    city         text    NOT NULL,
    region       text,
    postal_code  text    NOT NULL,
    country      text    NOT NULL,
    phone        text,
    is_default   boolean NOT NULL
);
CREATE INDEX addresses_user_idx ON addresses (user_id, seq);
-- At most one default address per user.
CREATE UNIQUE INDEX addresses_one_default_key ON addresses (user_id) WHERE is_default;

CREATE TABLE categories (
    id    uuid PRIMARY KEY,
    name  text NOT NULL
);
CREATE UNIQUE INDEX categories_name_key ON categories (lower(name));

CREATE TABLE products (
    id            uuid        PRIMARY KEY,
    seller_id     uuid        NOT NULL REFERENCES users (id),
    title         text        NOT NULL,
    description   text        NOT NULL,
    price_amount  bigint      NOT NULL CHECK (price_amount >= 0),
    currency      text        NOT NULL CHECK (length(currency) = 3),
    discount      jsonb,
    stock         bigint      NOT NULL CHECK (stock >= 0),
    images        jsonb       NOT NULL,
    -- A category in use cannot be deleted (NO ACTION).
    category_id   uuid        REFERENCES categories (id),
    active        boolean     NOT NULL,
    archived      boolean     NOT NULL,
    blocked       boolean     NOT NULL,
    version       bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
-- Keyset pages of the catalog: newest first and by price, overall and per seller
-- or category.
CREATE INDEX products_newest_idx ON products (created_at DESC, id DESC);
CREATE INDEX products_price_idx ON products (price_amount, id);
CREATE INDEX products_seller_newest_idx ON products (seller_id, created_at DESC, id DESC);
CREATE INDEX products_seller_price_idx ON products (seller_id, price_amount, id);
CREATE INDEX products_category_newest_idx ON products (category_id, created_at DESC, id DESC);
CREATE INDEX products_category_price_idx ON products (category_id, price_amount, id);

CREATE TABLE carts (
    buyer_id  uuid   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    version   bigint NOT NULL CHECK (version >= 0),
    lines     jsonb  NOT NULL
);

CREATE TABLE wishlist_entries (
    buyer_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    product_id  uuid        NOT NULL REFERENCES products (id),
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    added_at    timestamptz NOT NULL,
    PRIMARY KEY (buyer_id, product_id)
);
CREATE INDEX wishlist_entries_newest_idx ON wishlist_entries (buyer_id, seq DESC);

-- One row per checkout: the idempotency record.
CREATE TABLE checkouts (
    id               uuid        PRIMARY KEY,
    buyer_id         uuid        NOT NULL REFERENCES users (id),
    idempotency_key  text        NOT NULL,
    request_hash     text        NOT NULL,
    created_at       timestamptz NOT NULL,
    CONSTRAINT checkouts_buyer_key_key UNIQUE (buyer_id, idempotency_key)
);

CREATE TABLE orders (
    id            uuid        PRIMARY KEY,
    checkout_id   uuid        NOT NULL REFERENCES checkouts (id),
    buyer_id      uuid        NOT NULL REFERENCES users (id),
    seller_id     uuid        NOT NULL REFERENCES users (id),
    store_name    text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('pending', 'accepted', 'packed',
                      'shipped', 'delivered', 'cancelled', 'return_requested', 'returned')),
    items         jsonb       NOT NULL,
    address       jsonb       NOT NULL,
    total_amount  bigint      NOT NULL CHECK (total_amount >= 0),
    currency      text        NOT NULL CHECK (length(currency) = 3),
    history       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX orders_checkout_idx ON orders (checkout_id, seller_id);
CREATE INDEX orders_newest_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_status_newest_idx ON orders (status, created_at DESC, id DESC);
CREATE INDEX orders_buyer_newest_idx ON orders (buyer_id, created_at DESC, id DESC);
CREATE INDEX orders_seller_newest_idx ON orders (seller_id, created_at DESC, id DESC);
CREATE INDEX orders_seller_status_newest_idx ON orders (seller_id, status, created_at DESC, id DESC);

CREATE TABLE outbox (
    id               uuid        PRIMARY KEY,
    kind             text        NOT NULL,
    recipient        text        NOT NULL,
    subject          text        NOT NULL,
    text_body        text        NOT NULL,
    html_body        text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         bigint      NOT NULL CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL,
    last_error       text,
    created_at       timestamptz NOT NULL,
    delivered_at     timestamptz,
    claimed_by       uuid,
    claimed_until    timestamptz
);
-- The worker's claim: pending messages, oldest due first.
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at, id) WHERE status = 'pending';
-- Admin listings, newest first, optionally by status.
CREATE INDEX outbox_newest_idx ON outbox (created_at DESC, id DESC);
CREATE INDEX outbox_status_newest_idx ON outbox (status, created_at DESC, id DESC);
CREATE INDEX outbox_claimed_by_idx ON outbox (claimed_by) WHERE claimed_by IS NOT NULL;
