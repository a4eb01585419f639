-- How many writes a key's row has taken, the first included. A write that
-- returns 1 created the row: Redis most likely holds nothing under its key,
-- so its write-through tries a plain `SET NX` before the version-checked
-- script (docs/decisions.md, record 38). Rows from before this migration
-- count as written once.
ALTER TABLE records ADD COLUMN write_count INTEGER NOT NULL DEFAULT 1;
