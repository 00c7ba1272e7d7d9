-- Appends a transaction's events to the outbox and deletes them again, in
-- one statement: the write-ahead log keeps the inserts for the relay, the
-- table stays empty, and the statement needs no answer, so the store sends
-- it together with COMMIT (one round trip for both). Rows are inserted in
-- the order of the arrays, which is the order of the log.
CREATE FUNCTION mothership_outbox_append(topics text[], keys text[], vals bytea[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    seqs bigint[];
BEGIN
    WITH ins AS (
        INSERT INTO outbox (topic, key, value)
        SELECT e.topic, e.key, e.value FROM unnest(topics, keys, vals) WITH ORDINALITY AS e(topic, key, value, n) ORDER BY e.n
        RETURNING seq
    )
    SELECT array_agg(seq) INTO seqs FROM ins;
    DELETE FROM outbox WHERE seq = ANY(seqs);
END
$$;
