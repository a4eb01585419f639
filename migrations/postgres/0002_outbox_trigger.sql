-- Every write and delete of a record notes its key and version in the cache
-- outbox in the statement that makes it (crates/store/src/records.rs): a
-- write is one statement, atomic on its own, instead of a transaction of
-- four round trips. Writes by any other program are noted as well.
CREATE FUNCTION records_note_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cache_outbox (key, version, written_at_ms)
    VALUES (NEW.key, NEW.version, NEW.updated_at_ms)
    ON CONFLICT (key) DO UPDATE SET
        version = GREATEST(cache_outbox.version, excluded.version),
        written_at_ms = excluded.written_at_ms;
    RETURN NULL;
END
$$;

CREATE TRIGGER records_note_outbox AFTER INSERT OR UPDATE ON records
    FOR EACH ROW EXECUTE FUNCTION records_note_outbox();
