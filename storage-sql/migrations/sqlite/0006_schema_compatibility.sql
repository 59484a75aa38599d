-- Which builds this schema still serves, for rolling deploys: a server of an
-- older build that opens a database a newer build migrated serves it if its
-- newest migration is at least `oldest_compatible` (see src/schema.rs). A
-- migration that only adds leaves the row alone; one an older build cannot
-- live with sets `oldest_compatible` to its own number.
CREATE TABLE marketplace_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    oldest_compatible INTEGER NOT NULL
);
INSERT INTO marketplace_schema (id, oldest_compatible) VALUES (1, 6);
