-- A service's private indexes over its own resources (store.Tx.IndexPut):
-- lookups written with the resources they describe. The publication covers
-- the outbox only, so no entry is ever published. Keys compare bytewise
-- (COLLATE "C"), as IndexList promises, whatever the database's locale.
CREATE TABLE index_entries (
    name  text NOT NULL,
    key   text COLLATE "C" NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (name, key)
);
