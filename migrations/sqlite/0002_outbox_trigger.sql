-- Every write and delete of a record notes its key and version in the cache
-- outbox in the statement that makes it (crates/store/src/records.rs): a
-- write is one statement, atomic on its own, instead of a transaction of
-- four round trips to the connection's thread. A note never lowers the
-- version a key's entry holds; writes by any other program are noted too.
-- SQLite's triggers take one event each, hence the same body twice.
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
