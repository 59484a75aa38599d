-- A seller's own stock-keeping unit on each product (optional), so a bulk
-- import keyed on it finds the product again instead of listing it twice.
-- Unique per seller among the products that are not archived: archiving gives
-- the SKU up, and another seller may use the same one. The partial unique
-- index is the rule itself, and it serves the lookup by SKU.
ALTER TABLE products
    ADD COLUMN sku TEXT CHECK (sku IS NULL OR length(sku) BETWEEN 1 AND 64);

CREATE UNIQUE INDEX products_seller_sku_key ON products (seller_id, sku)
    WHERE sku IS NOT NULL AND archived = 0;
