-- Which builds this schema still serves, for rolling deploys: a server of an
-- older build that restarts on a database a newer build migrated serves it if
-- its newest migration is at least `oldest_compatible` (see src/schema.rs).
-- A migration that only adds leaves the row alone; one an older build cannot
-- live with sets `oldest_compatible` to its own number.
CREATE TABLE marketplace_schema (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    oldest_compatible BIGINT NOT NULL
);
INSERT INTO marketplace_schema (id, oldest_compatible) VALUES (TRUE, 8);
