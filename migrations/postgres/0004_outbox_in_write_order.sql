-- The cache outbox becomes a log in write order, as in SQLite's 0005:
-- each write of a record appends one entry, with an identity that is never
-- reused. The aged replay reads from the start and stops at the first young
-- entry, and removes what it applied by id. Ids are taken when a
-- transaction inserts, not when it commits, so an entry can appear behind
-- one a replay has already passed; every replay starts from the first id
-- again, and removes only the ids it read. docs/decisions.md, record 42.
CREATE TABLE cache_outbox_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key           TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    written_at_ms BIGINT NOT NULL
);

-- Entries move in the order they were written.
INSERT INTO cache_outbox_log (key, version, written_at_ms)
SELECT key, version, written_at_ms FROM cache_outbox ORDER BY written_at_ms, key;

DROP TABLE cache_outbox;
ALTER TABLE cache_outbox_log RENAME TO cache_outbox;

-- As in 0002, without the merge: a later write of a key is a later entry.
CREATE OR REPLACE FUNCTION records_note_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cache_outbox (key, version, written_at_ms)
    VALUES (NEW.key, NEW.version, NEW.updated_at_ms);
    RETURN NULL;
END
$$;
