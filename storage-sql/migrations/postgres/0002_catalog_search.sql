-- Catalog text search (`q`) matches titles and descriptions with
-- `ILIKE '%term%'`, which no B-tree can serve: without help every search reads
-- the whole catalog (20 ms per page on 10,000 products). Trigram indexes from
-- pg_trgm (shipped with PostgreSQL, a trusted extension since 13, so a database
-- owner may install it) let a search read only the products that match.
--
-- Where the extension cannot be installed (not shipped, or no CREATE right on
-- the database), search keeps working without the indexes, and this migration
-- says so in a notice. An extension already installed in any schema is used
-- from there.
DO $$
DECLARE
    ext_schema text;
BEGIN
    SELECT n.nspname INTO ext_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_trgm';
    IF ext_schema IS NULL THEN
        BEGIN
            CREATE EXTENSION pg_trgm;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'pg_trgm cannot be installed (%): catalog search runs without trigram indexes', SQLERRM;
            RETURN;
        END;
        SELECT n.nspname INTO ext_schema
          FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'pg_trgm';
    END IF;
    EXECUTE format('CREATE INDEX products_title_trgm_idx ON products USING gin (title %I.gin_trgm_ops)', ext_schema);
    EXECUTE format('CREATE INDEX products_description_trgm_idx ON products USING gin (description %I.gin_trgm_ops)', ext_schema);
END
$$;
