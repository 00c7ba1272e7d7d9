-- When a deleted resource's retention ends (store.Tx.ResourceDeleteRetained):
-- until then every layer keeps what it needs to restore it.
ALTER TABLE resources ADD COLUMN purge_at timestamptz;
