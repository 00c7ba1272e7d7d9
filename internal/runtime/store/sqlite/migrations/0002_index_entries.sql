-- A service's private indexes over its own resources (store.Tx.IndexPut):
-- lookups written with the resources they describe, never published.
-- Keys compare bytewise (BINARY), as IndexList promises.
CREATE TABLE index_entries (
    name  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
) WITHOUT ROWID;
