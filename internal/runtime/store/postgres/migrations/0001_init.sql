-- Resources a service owns. The row stays after a delete (deleted_at set).
CREATE TABLE resources (
    kind         text        NOT NULL,
    id           text        NOT NULL,
    organization text        NOT NULL DEFAULT '',
    environment  text        NOT NULL DEFAULT '',
    generation   bigint      NOT NULL,
    version      bigint      NOT NULL,
    spec         text        NOT NULL, -- JSON, kept byte for byte (jsonb would reorder it)
    status       text        NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    deleted_at   timestamptz,
    PRIMARY KEY (kind, id)
);

CREATE INDEX resources_by_tenant ON resources (kind, organization, environment, id);

-- Events for the relay. Rows are read from the write-ahead log through the
-- publication below (logical replication), never from the table: a row is
-- deleted by the same transaction that inserts it, so the table stays empty
-- and the log carries the insert (the outbox pattern of Debezium).
CREATE TABLE outbox (
    seq   bigserial PRIMARY KEY,
    topic text      NOT NULL,
    key   text      NOT NULL,
    value bytea     NOT NULL
);

CREATE PUBLICATION mothership_outbox FOR TABLE outbox WITH (publish = 'insert');

-- The newest event seen per subject of each topic the service reacts to.
CREATE TABLE observed (
    topic   text   NOT NULL,
    subject text   NOT NULL,
    version bigint NOT NULL,
    event   bytea  NOT NULL,
    PRIMARY KEY (topic, subject)
);
