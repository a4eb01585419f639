-- Records: the source of truth. `version` grows with every write of a key
-- (see crates/platform/src/store/records.rs); times are Unix milliseconds.
CREATE TABLE records (
    key           TEXT    NOT NULL PRIMARY KEY,
    value         TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER
) WITHOUT ROWID;

-- Lets cleanup find expired records without scanning the table.
CREATE INDEX records_expires_at ON records (expires_at_ms) WHERE expires_at_ms IS NOT NULL;

-- Keys written recently, at which version: replayed against Redis after an
-- outage so that Redis never serves a value older than the store's.
CREATE TABLE cache_outbox (
    key           TEXT    NOT NULL PRIMARY KEY,
    version       INTEGER NOT NULL,
    written_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
