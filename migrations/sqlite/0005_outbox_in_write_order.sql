-- The cache outbox becomes a log in write order: each write of a record
-- appends one entry, with an id that grows with every entry and is never
-- reused (AUTOINCREMENT). Keyed by record key, every write updated a row
-- somewhere in the key's B-tree, and a replica's aged replay read the whole
-- table each second to find the entries past their retention. In write
-- order, the aged entries come first: the replay reads from the start and
-- stops at the first young one, and removes what it applied by id.
-- docs/decisions.md, record 42.
CREATE TABLE cache_outbox_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    key           TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    written_at_ms INTEGER NOT NULL
);

-- Entries move in the order they were written.
INSERT INTO cache_outbox_log (key, version, written_at_ms)
SELECT key, version, written_at_ms FROM cache_outbox ORDER BY written_at_ms, key;

DROP TRIGGER records_note_insert;
DROP TRIGGER records_note_update;
DROP TABLE cache_outbox;
ALTER TABLE cache_outbox_log RENAME TO cache_outbox;

-- As in 0002, without the merge: a later write of a key is a later entry.
CREATE TRIGGER records_note_insert AFTER INSERT ON records
BEGIN
    INSERT INTO cache_outbox (key, version, written_at_ms)
    VALUES (NEW.key, NEW.version, NEW.updated_at_ms);
END;

CREATE TRIGGER records_note_update AFTER UPDATE ON records
BEGIN
    INSERT INTO cache_outbox (key, version, written_at_ms)
    VALUES (NEW.key, NEW.version, NEW.updated_at_ms);
END;
