-- Outbox rows now stay in the table until the relay has Kafka's
-- acknowledgement for them (the feed deletes them on Confirm). The
-- replication slot is the fast path; the table is what a lost slot (dropped
-- by anyone, invalidated past max_slot_wal_keep_size) is caught up from, so
-- that every committed change still reaches Kafka.
CREATE OR REPLACE FUNCTION mothership_outbox_append(topics text[], keys text[], vals bytea[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO outbox (topic, key, value)
    SELECT e.topic, e.key, e.value FROM unnest(topics, keys, vals) WITH ORDINALITY AS e(topic, key, value, n) ORDER BY e.n
$$;

-- The slot this database's relay reads, once it was made: a slot that is
-- missing at the next start was lost, not never made. catch_up is set from
-- the moment a new slot is made until every row the table held then
-- reached Kafka, so that a crash during the catch-up resumes it.
CREATE TABLE cdc_slot (
    slot       text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    catch_up   boolean     NOT NULL DEFAULT false
);
