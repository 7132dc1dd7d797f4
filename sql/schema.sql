-- pg_worm: the extension's own tables. Hand-written; loaded first.
-- All of them are dumped by pg_dump (pg_extension_config_dump) and guarded by
-- triggers (attached in guards.sql once the trigger functions exist): nobody
-- updates, deletes or truncates them except pg_worm's own functions.

-- One row per protected table. table_uid is the table's stable identity: it is
-- bound into every chain link and survives renames, pg_dump/pg_restore and
-- physical replication (unlike the OID).
CREATE TABLE worm.tables (
    table_uid       uuid PRIMARY KEY,
    table_name      regclass UNIQUE,            -- NULL once retired (the table is gone)
    chains          integer NOT NULL CHECK (chains BETWEEN 1 AND 1024),
    retention       interval CHECK (retention > interval '0'),
    legal_basis     text,
    legal_hold      boolean NOT NULL DEFAULT false,
    hold_reason     text,
    hold_since      timestamptz,
    protected_at    timestamptz NOT NULL,
    protected_by    text NOT NULL,
    rows_at_protect bigint NOT NULL,
    encoding_version integer NOT NULL DEFAULT 1 CHECK (encoding_version >= 1),
    retired_at      timestamptz,
    CHECK ((table_name IS NULL) = (retired_at IS NOT NULL))
);
COMMENT ON COLUMN worm.tables.retired_at IS 'pg_worm: when worm.retire dropped the table (its certificate is in the ledger)';
COMMENT ON COLUMN worm.tables.encoding_version IS 'pg_worm: version of the row encoding and chain links of the table (docs/hashing.md)';
COMMENT ON TABLE worm.tables IS 'pg_worm: registry of protected tables (changed only through worm.* functions)';

-- Legal holds, several per table, numbered per table; a released hold stays
-- (with who released it, when and why). worm.tables.legal_hold, hold_reason
-- and hold_since summarize the holds in force.
CREATE TABLE worm.legal_holds (
    table_uid      uuid NOT NULL REFERENCES worm.tables (table_uid),
    hold_id        bigint NOT NULL CHECK (hold_id > 0),
    reason         text NOT NULL,
    placed_at      timestamptz NOT NULL,
    placed_by      text NOT NULL,
    released_at    timestamptz,
    released_by    text,
    release_reason text,
    PRIMARY KEY (table_uid, hold_id)
);
COMMENT ON TABLE worm.legal_holds IS 'pg_worm: legal holds placed and released (changed only through worm.legal_hold and worm.release_hold)';

-- Protected partitioned tables (parents, also nested ones): what their
-- partitions, present and future, are protected with. Every leaf partition is
-- a protected table of its own in worm.tables (own table_uid and chains).
CREATE TABLE worm.partitioned_tables (
    parent_uid    uuid PRIMARY KEY,
    table_name    regclass UNIQUE,              -- NULL once dropped (its partitions retired)
    chains        integer NOT NULL CHECK (chains BETWEEN 1 AND 1024),
    retention     interval CHECK (retention > interval '0'),
    legal_basis   text,
    protected_at  timestamptz NOT NULL,
    protected_by  text NOT NULL,
    dropped_at    timestamptz,
    CHECK ((table_name IS NULL) = (dropped_at IS NOT NULL))
);
COMMENT ON TABLE worm.partitioned_tables IS 'pg_worm: protected partitioned tables; their partitions, present and future, are protected with these settings';

-- The stored tree state of each table's checkpoints (format version 2, a tree
-- per chain): the root of every 256 consecutive leaves of each chain's tree
-- (pg_worm_core::merkle::TILE), at chain-local positions. worm.checkpoint
-- reads the rows after the last complete tile instead of the whole chain,
-- worm.prove one tile's rows; both recompute the latest checkpoint's chain
-- root from them first and read the chain in full when they do not give it,
-- so a tampered tile is never trusted.
-- A cache: not dumped (a restored database proves by the full read until
-- its next checkpoint).
CREATE TABLE worm.merkle_tiles (
    table_uid   uuid NOT NULL,
    chain       integer NOT NULL CHECK (chain >= 0),
    tile        bigint NOT NULL CHECK (tile >= 0),
    ledger_seq  bigint NOT NULL,
    root        bytea NOT NULL CHECK (length(root) = 32),
    PRIMARY KEY (table_uid, chain, tile)
);
COMMENT ON TABLE worm.merkle_tiles IS 'pg_worm: Merkle tile roots of each chain''s tree at the table''s checkpoints (a cache worm.checkpoint and worm.prove check against the latest checkpoint)';

-- Per purged chain, the last row a purge removed: the surviving chain links to it.
CREATE TABLE worm.anchors (
    table_uid   uuid NOT NULL REFERENCES worm.tables (table_uid),
    chain       integer NOT NULL,
    seq         bigint NOT NULL CHECK (seq > 0),
    link        bytea NOT NULL CHECK (length(link) = 32),
    inserted_at timestamptz NOT NULL,
    PRIMARY KEY (table_uid, chain)
);
COMMENT ON TABLE worm.anchors IS 'pg_worm: purge anchors (last removed row of each purged chain)';

-- The extension's own chained ledger of events. hash = SHA-256 over
-- "pg_worm.ledger" NUL, version 1, seq, prev_hash and the canonical JSON of
-- document (docs/certificates.md).
CREATE TABLE worm.ledger (
    seq        bigint PRIMARY KEY CHECK (seq > 0),
    event      text NOT NULL,
    table_uid  uuid,
    at         timestamptz NOT NULL,
    document   jsonb NOT NULL,
    prev_hash  bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash       bytea NOT NULL UNIQUE CHECK (length(hash) = 32)
);
COMMENT ON TABLE worm.ledger IS 'pg_worm: chained ledger of protect, retention, hold and purge events';

-- Auditors' Ed25519 public keys: when any is registered, worm.verify(tbl,
-- against) counts only digests signed by one of them.
CREATE TABLE worm.trusted_keys (
    key_id     text PRIMARY KEY,
    public_key bytea NOT NULL UNIQUE CHECK (length(public_key) = 32),
    added_at   timestamptz NOT NULL,
    added_by   text NOT NULL
);
COMMENT ON TABLE worm.trusted_keys IS 'pg_worm: public keys whose signatures make a checkpoint digest count';

SELECT pg_catalog.pg_extension_config_dump('worm.tables', '');
SELECT pg_catalog.pg_extension_config_dump('worm.trusted_keys', '');
SELECT pg_catalog.pg_extension_config_dump('worm.anchors', '');
SELECT pg_catalog.pg_extension_config_dump('worm.ledger', '');
SELECT pg_catalog.pg_extension_config_dump('worm.legal_holds', '');
SELECT pg_catalog.pg_extension_config_dump('worm.partitioned_tables', '');

REVOKE ALL ON worm.tables, worm.anchors, worm.ledger, worm.trusted_keys FROM PUBLIC;
GRANT SELECT ON worm.tables, worm.anchors, worm.ledger, worm.trusted_keys TO PUBLIC;
REVOKE ALL ON worm.partitioned_tables, worm.merkle_tiles FROM PUBLIC;
GRANT SELECT ON worm.partitioned_tables, worm.merkle_tiles TO PUBLIC;

-- Results of verifications, one row per table and run: worm.verify,
-- verify_all, verify_since and checkpoint called by hand (on a primary, in a
-- read-write transaction) and the background watcher's runs. table_uid is
-- the identity (the table may be retired later: a regclass of a dropped
-- table would break dumps and views); table_label the name it had. The
-- watcher removes rows older than worm.verification_retention. Read through
-- the view worm.verifications.
CREATE TABLE worm.verification_log (
    at           timestamptz NOT NULL,
    table_uid    uuid NOT NULL,
    table_label  text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('incremental', 'full', 'checkpoint')),
    ok           boolean NOT NULL,
    rows_checked bigint NOT NULL,
    problems     bigint NOT NULL,
    detail       text NOT NULL,
    source       text NOT NULL CHECK (source IN ('manual', 'watcher')),
    run_by       text NOT NULL,
    -- A row dated in the future would stay the latest result for ever (a
    -- restore into the empty table is the one INSERT not pg_worm's own).
    CONSTRAINT verification_log_at_not_future
        CHECK (at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp())
);
CREATE INDEX verification_log_table_at ON worm.verification_log (table_uid, at);
CREATE INDEX verification_log_at ON worm.verification_log (at);
COMMENT ON TABLE worm.verification_log IS 'pg_worm: stored verification results (read worm.verifications); changed only by pg_worm';
SELECT pg_catalog.pg_extension_config_dump('worm.verification_log', '');
REVOKE ALL ON worm.verification_log FROM PUBLIC;
GRANT SELECT ON worm.verification_log TO PUBLIC;
