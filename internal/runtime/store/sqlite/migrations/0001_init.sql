-- Resources a service owns. The row stays after a delete (deleted_at set):
-- history, undelete and the final desired event all need it.
CREATE TABLE resources (
    kind         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    organization TEXT    NOT NULL DEFAULT '',
    environment  TEXT    NOT NULL DEFAULT '',
    generation   INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    spec         TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    deleted_at   INTEGER,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;

CREATE INDEX resources_by_tenant ON resources (kind, organization, environment, id);

-- Events waiting for the relay, in commit order. AUTOINCREMENT keeps a
-- position from being reused once the relay has deleted the rows before it.
CREATE TABLE outbox (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT    NOT NULL,
    key   TEXT    NOT NULL,
    value BLOB    NOT NULL
);

-- The newest event seen per subject of each topic the service reacts to.
CREATE TABLE observed (
    topic   TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    version INTEGER NOT NULL,
    event   BLOB    NOT NULL,
    PRIMARY KEY (topic, subject)
) WITHOUT ROWID;
