-- Records move to a table with rowids, found by key through the primary
-- key's index.
--
-- A WITHOUT ROWID table keeps each whole row in the key's B-tree, whose
-- cells SQLite holds to about a quarter of a page (some 1,000 bytes of a
-- 4 KiB page): any longer row spills into an overflow page of its own. A
-- record of a 1 KiB value took a leaf cell and a whole overflow page, and
-- every write of it rewrote both. A rowid table keeps rows of up to nearly
-- a page inline. SQLite's own guidance is WITHOUT ROWID for rows under
-- about a twentieth of a page; values here reach a mebibyte.
-- docs/decisions.md, record 31, has the figures.
CREATE TABLE records_with_rowid (
    key           TEXT    NOT NULL PRIMARY KEY,
    value         TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER
);

-- The rows move as they are: no trigger watches the new table yet, so
-- the move notes nothing in the cache outbox.
INSERT INTO records_with_rowid (key, value, version, updated_at_ms, expires_at_ms)
SELECT key, value, version, updated_at_ms, expires_at_ms FROM records;

-- Takes the old table's index and triggers with it.
DROP TABLE records;
ALTER TABLE records_with_rowid RENAME TO records;

-- As in 0001 and 0002.
CREATE INDEX records_expires_at ON records (expires_at_ms) WHERE expires_at_ms IS NOT NULL;

CREATE TRIGGER records_note_insert AFTER INSERT ON records
BEGIN
    INSERT INTO cache_outbox (key, version, written_at_ms)
    VALUES (NEW.key, NEW.version, NEW.updated_at_ms)
    ON CONFLICT (key) DO UPDATE SET
        version = MAX(cache_outbox.version, excluded.version),
        written_at_ms = excluded.written_at_ms;
END;

CREATE TRIGGER records_note_update AFTER UPDATE ON records
BEGIN
    INSERT INTO cache_outbox (key, version, written_at_ms)
    VALUES (NEW.key, NEW.version, NEW.updated_at_ms)
    ON CONFLICT (key) DO UPDATE SET
        version = MAX(cache_outbox.version, excluded.version),
        written_at_ms = excluded.written_at_ms;
END;
