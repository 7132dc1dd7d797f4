-- pg_worm 0.1.0 -> 0.2.0, run by ALTER EXTENSION pg_worm UPDATE.
--
-- EVERY SCHEMA CHANGE SINCE 0.1.0 BELONGS IN THIS FILE: a table, column,
-- default, constraint, view, function (signature, body, SET search_path,
-- SECURITY DEFINER, volatility, strictness, C symbol), trigger on pg_worm's own
-- tables, event trigger and its ENABLE ALWAYS state, grant, role,
-- pg_extension_config_dump entry or comment added to or changed in
-- sql/schema.sql, sql/views.sql or a #[pg_extern]/#[pg_trigger] in src/ must be
-- repeated here, so that an updated 0.1.0 database is exactly a fresh 0.2.0
-- install. tests/scenarios/98_extension_update.sh compares the two catalogs
-- and fails on any difference; it also runs tables protected by 0.1.0's
-- library through the update.
--
-- So does the state 0.2.0 keeps that 0.1.0 did not (a hold in force becomes
-- a worm.legal_holds row; a database holding protected tables gets the DROP
-- DATABASE marker).
--
-- It runs as the superuser who runs ALTER EXTENSION, with search_path set to
-- worm, inside that statement's transaction: a failure leaves 0.1.0 in
-- place. pg_worm's guards stand aside for its own script (guard::exempt);
-- the guard triggers of its tables do not (disabled around the one UPDATE).
-- Shipped by `cargo pgrx package` from sql/ (pg_worm--A--B.sql); never
-- edited once 0.2.0 is released.
\echo Use "ALTER EXTENSION pg_worm UPDATE" to load this file. \quit

-- worm.tables: the hashing version of each table. Tables protected under
-- 0.1.0 were chained with version 1: the default fills their rows (a constant
-- default, no table rewrite).
ALTER TABLE worm.tables
    ADD COLUMN encoding_version integer NOT NULL DEFAULT 1 CHECK (encoding_version >= 1);
COMMENT ON COLUMN worm.tables.encoding_version IS 'pg_worm: version of the row encoding and chain links of the table (docs/hashing.md)';

-- Guards of pg_worm's own tables now also refuse INSERT by anyone but
-- pg_worm's functions (an empty table still takes a restore). CREATE OR
-- REPLACE resets the firing mode: ENABLE ALWAYS again.
CREATE OR REPLACE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.tables
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta('internal-update');
CREATE OR REPLACE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.anchors
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta('internal-update');
CREATE OR REPLACE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.ledger
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta();
CREATE OR REPLACE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.trusted_keys
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta();
ALTER TABLE worm.tables ENABLE ALWAYS TRIGGER worm_guard;
ALTER TABLE worm.anchors ENABLE ALWAYS TRIGGER worm_guard;
ALTER TABLE worm.ledger ENABLE ALWAYS TRIGGER worm_guard;
ALTER TABLE worm.trusted_keys ENABLE ALWAYS TRIGGER worm_guard;

-- worm.chain_heads: search_path pinned, the cast qualified.
CREATE OR REPLACE FUNCTION worm.chain_heads(tbl regclass)
RETURNS TABLE (chain int, head_seq bigint, head_link text, anchor_seq bigint)
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM worm._chain_heads(tbl::pg_catalog.oid) $$;

-- worm.tables: a retired table (worm.retire) keeps its identity with
-- table_name NULL and retired_at set.
ALTER TABLE worm.tables ALTER COLUMN table_name DROP NOT NULL;
ALTER TABLE worm.tables ADD COLUMN retired_at timestamptz;
ALTER TABLE worm.tables ADD CHECK ((table_name IS NULL) = (retired_at IS NOT NULL));
COMMENT ON COLUMN worm.tables.retired_at IS 'pg_worm: when worm.retire dropped the table (its certificate is in the ledger)';

-- worm.protected_tables: encoding_version and a partition's parent as its last
-- columns, retired tables left out.
CREATE OR REPLACE VIEW worm.protected_tables AS
SELECT t.table_name,
       t.table_uid,
       t.chains,
       (SELECT coalesce(sum(h.head_seq - h.anchor_seq), 0)::bigint
          FROM worm._chain_heads(t.table_name::oid) AS h) AS rows,
       t.retention,
       t.legal_basis,
       t.legal_hold,
       t.hold_reason,
       t.protected_at,
       t.protected_by,
       (SELECT max(l.at) FROM worm.ledger AS l
         WHERE l.table_uid = t.table_uid AND l.event IN ('purge', 'checkpoint')) AS last_verified,
       (SELECT max(l.at) FROM worm.ledger AS l
         WHERE l.table_uid = t.table_uid AND l.event = 'checkpoint') AS last_checkpoint,
       (SELECT max(l.at) FROM worm.ledger AS l
         WHERE l.table_uid = t.table_uid AND l.event = 'purge') AS last_purge,
       worm.enforcement() AS enforcement,
       t.encoding_version,
       (SELECT i.inhparent::regclass FROM pg_catalog.pg_inherits AS i
         WHERE i.inhrelid = t.table_name::oid) AS parent
  FROM worm.tables AS t
 WHERE t.retired_at IS NULL;

-- Columns added to a protected table: checked after the fact and recorded in
-- the ledger.
CREATE FUNCTION worm.guard_ddl_end() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'worm_guard_ddl_end';
CREATE EVENT TRIGGER worm_guard_ddl_end ON ddl_command_end WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE SCHEMA')
    EXECUTE FUNCTION worm.guard_ddl_end();

-- Event triggers fire whatever session_replication_role says.
ALTER EVENT TRIGGER worm_guard_ddl ENABLE ALWAYS;
ALTER EVENT TRIGGER worm_guard_drop ENABLE ALWAYS;
ALTER EVENT TRIGGER worm_guard_ddl_end ENABLE ALWAYS;

-- worm_restore: its members' INSERTs (like superusers') keep the worm_ values
-- rows arrive with when they extend the table's chains exactly (data-only
-- restores, logical-replication subscribers). Cluster-wide: created only when
-- missing.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'worm_restore') THEN
        CREATE ROLE worm_restore NOLOGIN;
    END IF;
END
$roles$;

-- worm.adopt: protects a table restored alone (pg_restore -t, or left
-- half-restored by 0.1.0) or a subscriber's copy under its identity, with the
-- source's purge anchors, keeping every link.
CREATE FUNCTION worm.adopt(tbl regclass, table_uid uuid, chains int,
                           retention interval DEFAULT NULL, legal_basis text DEFAULT NULL,
                           anchors jsonb DEFAULT NULL)
RETURNS text VOLATILE
LANGUAGE c AS 'MODULE_PATHNAME', 'worm_adopt_wrapper';

-- Several legal holds per table (worm.legal_holds, worm.holds,
-- worm.release_hold(tbl, hold_id, reason)). worm.tables.legal_hold,
-- hold_reason and hold_since now summarize the holds in force.
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
SELECT pg_catalog.pg_extension_config_dump('worm.legal_holds', '');

-- A hold in force under 0.1.0 (one per table at most) becomes hold 1, placed
-- when and by whom 0.1.0's ledger entry for it says; the registry's summary
-- takes 0.2.0's form ('#1 reason'). The guard trigger is off for this one
-- statement, inside this script's transaction.
INSERT INTO worm.legal_holds (table_uid, hold_id, reason, placed_at, placed_by)
SELECT t.table_uid, 1, t.hold_reason, t.hold_since,
       coalesce((SELECT l.document -> 'by' ->> 'session_user' FROM worm.ledger AS l
                  WHERE l.table_uid = t.table_uid AND l.event = 'legal_hold'
                  ORDER BY l.seq DESC LIMIT 1), t.protected_by)
  FROM worm.tables AS t
 WHERE t.legal_hold;
ALTER TABLE worm.tables DISABLE TRIGGER worm_guard;
UPDATE worm.tables SET hold_reason = '#1 ' || hold_reason WHERE legal_hold;
ALTER TABLE worm.tables ENABLE ALWAYS TRIGGER worm_guard;

CREATE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.legal_holds
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta('internal-update');
ALTER TABLE worm.legal_holds ENABLE ALWAYS TRIGGER worm_guard;
GRANT SELECT ON worm.legal_holds TO worm_auditor, worm_admin;

CREATE VIEW worm.holds AS
SELECT t.table_name, h.hold_id, h.reason, h.placed_at, h.placed_by
  FROM worm.legal_holds AS h
  JOIN worm.tables AS t ON t.table_uid = h.table_uid
 WHERE h.released_at IS NULL;
COMMENT ON VIEW worm.holds IS 'pg_worm: legal holds in force (worm.legal_holds keeps released ones too)';
GRANT SELECT ON worm.holds TO PUBLIC;

CREATE FUNCTION worm.release_hold(tbl regclass, hold_id bigint, reason text)
RETURNS jsonb STRICT VOLATILE
LANGUAGE c AS 'MODULE_PATHNAME', 'worm_release_hold_id_wrapper';

-- worm.retire: drops a protected table whose every row has passed its
-- retention, with a whole-table deletion certificate.
CREATE FUNCTION worm.retire(tbl regclass)
RETURNS jsonb STRICT VOLATILE
LANGUAGE c AS 'MODULE_PATHNAME', 'worm_retire_wrapper';

CREATE OR REPLACE VIEW worm.certificates AS
SELECT l.seq AS ledger_seq,
       (l.document ->> 'certificate_id')::uuid AS certificate_id,
       l.table_uid,
       l.document -> 'table' ->> 'name' AS table_name,
       l.at AS purged_at,
       (l.document ->> 'cutoff')::timestamptz AS cutoff,
       (l.document -> 'removed' ->> 'rows')::bigint AS rows_removed,
       l.document -> 'retention' ->> 'period' AS retention,
       l.document -> 'by' ->> 'session_user' AS purged_by,
       jsonb_build_object('certificate', l.document,
                          'ledger_entry', jsonb_build_object('seq', l.seq,
                                                             'prev_hash', encode(l.prev_hash, 'hex'),
                                                             'hash', encode(l.hash, 'hex'))) AS certificate
  FROM worm.ledger AS l
 WHERE l.event IN ('purge', 'retire');
COMMENT ON VIEW worm.certificates IS 'pg_worm: deletion certificates issued by worm.purge_expired and worm.retire';

-- A database holding protected tables carries worm.protected_database = on
-- (pg_db_role_setting), which keeps DROP DATABASE refused with pg_worm
-- preloaded; 0.2.0 sets it when a table is protected, so tables protected
-- under 0.1.0 need it set here.
DO $marker$
BEGIN
    IF EXISTS (SELECT FROM worm.tables AS t JOIN pg_catalog.pg_class AS c ON c.oid = t.table_name::pg_catalog.oid) THEN
        EXECUTE pg_catalog.format('ALTER DATABASE %I SET worm.protected_database = on',
                                  pg_catalog.current_database());
    END IF;
END
$marker$;

-- Protected partitioned tables: their partitions, present and future, are
-- protected with these settings.
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
SELECT pg_catalog.pg_extension_config_dump('worm.partitioned_tables', '');
REVOKE ALL ON worm.partitioned_tables FROM PUBLIC;
GRANT SELECT ON worm.partitioned_tables TO PUBLIC;
GRANT SELECT ON worm.partitioned_tables TO worm_auditor, worm_admin;
CREATE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.partitioned_tables
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta('internal-update');
ALTER TABLE worm.partitioned_tables ENABLE ALWAYS TRIGGER worm_guard;

-- worm.verify names the table each row is about (a partition, when a
-- partitioned table is verified): a new last result column, table_name.
DROP FUNCTION worm.verify(regclass);
CREATE FUNCTION worm.verify(tbl regclass)
RETURNS TABLE (chain int, rows_checked bigint, ok boolean, first_bad_seq bigint, detail text,
               problems bigint, head_seq bigint, head_link text, table_name text)
STRICT VOLATILE
LANGUAGE c AS 'MODULE_PATHNAME', 'worm_verify_wrapper';
DROP FUNCTION worm.verify(regclass, jsonb);
CREATE FUNCTION worm.verify(tbl regclass, against jsonb)
RETURNS TABLE (chain int, rows_checked bigint, ok boolean, first_bad_seq bigint, detail text,
               problems bigint, head_seq bigint, head_link text, table_name text)
STRICT VOLATILE
LANGUAGE c AS 'MODULE_PATHNAME', 'worm_verify_against_wrapper';

-- worm.checkpoint is incremental by default (format version 2, a tree per
-- chain); full => true re-reads and re-verifies the whole table.
DROP FUNCTION worm.checkpoint(regclass);
CREATE FUNCTION worm.checkpoint(tbl regclass, full boolean DEFAULT false)
RETURNS jsonb
STRICT VOLATILE
LANGUAGE c AS 'MODULE_PATHNAME', 'worm_checkpoint_wrapper';

-- worm.verify_since: what came after a checkpoint (the newest by default).
CREATE FUNCTION worm.verify_since(tbl regclass, checkpoint jsonb DEFAULT NULL)
RETURNS TABLE (chain int, rows_checked bigint, ok boolean, first_bad_seq bigint, detail text,
               problems bigint, head_seq bigint, head_link text, table_name text)
VOLATILE
LANGUAGE c AS 'MODULE_PATHNAME', 'worm_verify_since_wrapper';

-- The stored tree state of each table's latest checkpoint (worm.prove).
CREATE TABLE worm.merkle_tiles (
    table_uid   uuid NOT NULL,
    chain       integer NOT NULL CHECK (chain >= 0),
    tile        bigint NOT NULL CHECK (tile >= 0),
    ledger_seq  bigint NOT NULL,
    root        bytea NOT NULL CHECK (length(root) = 32),
    PRIMARY KEY (table_uid, chain, tile)
);
COMMENT ON TABLE worm.merkle_tiles IS 'pg_worm: Merkle tile roots of each chain''s tree at the table''s checkpoints (a cache worm.checkpoint and worm.prove check against the latest checkpoint)';
REVOKE ALL ON worm.merkle_tiles FROM PUBLIC;
GRANT SELECT ON worm.merkle_tiles TO PUBLIC;
GRANT SELECT ON worm.merkle_tiles TO worm_auditor, worm_admin;
CREATE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.merkle_tiles
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta('internal-update');
ALTER TABLE worm.merkle_tiles ENABLE ALWAYS TRIGGER worm_guard;

-- Watching (issue 14): stored verification results, worm.verifications,
-- worm.status; the background watcher's settings live in the library.
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

CREATE FUNCTION worm."worm_guard_verification_log"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'worm_guard_verification_log_wrapper';
CREATE FUNCTION worm."_oldest_row"(
	"tbl" oid
) RETURNS timestamp with time zone
STRICT STABLE
LANGUAGE c
AS 'MODULE_PATHNAME', 'worm_oldest_row_wrapper';
-- Watching: stored verification results and the health of each table.
CREATE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.verification_log
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_verification_log();
ALTER TABLE worm.verification_log ENABLE ALWAYS TRIGGER worm_guard;

CREATE VIEW worm.verifications AS
SELECT v.at,
       t.table_name,
       v.kind,
       v.ok,
       v.rows_checked,
       v.problems,
       v.detail,
       v.table_uid,
       v.table_label,
       v.source,
       v.run_by
  FROM worm.verification_log AS v
  LEFT JOIN worm.tables AS t ON t.table_uid = v.table_uid;
COMMENT ON VIEW worm.verifications IS 'pg_worm: stored verification results, one row per table and run (table_name is NULL once the table is retired; table_label keeps its name)';

CREATE VIEW worm.status AS
SELECT t.table_name,
       t.table_uid,
       h.rows,
       t.chains,
       t.retention,
       (SELECT count(*) FROM worm.legal_holds AS lh
         WHERE lh.table_uid = t.table_uid AND lh.released_at IS NULL) AS active_holds,
       worm.enforcement() AS enforcement,
       CASE WHEN lv.at IS NOT NULL THEN f.failures = 0 END AS ok,
       f.problems,
       lv.at AS last_verified_at,
       lv.kind AS last_verification_kind,
       lv.ok AS last_verification_ok,
       lv.problems AS last_verification_problems,
       (SELECT max(v.at) FROM worm.verification_log AS v
         WHERE v.table_uid = t.table_uid AND v.kind = 'full' AND v.ok) AS last_full_ok_at,
       lc.at AS last_checkpoint_at,
       pg_catalog.now() - lc.at AS checkpoint_age,
       worm._oldest_row(t.table_name::oid) + t.retention AS next_purge_due
  FROM worm.tables AS t
  CROSS JOIN LATERAL (SELECT coalesce(sum(c.head_seq - c.anchor_seq), 0)::bigint AS rows
                        FROM worm._chain_heads(t.table_name::oid) AS c) AS h
  LEFT JOIN LATERAL (SELECT v.at, v.kind, v.ok, v.problems FROM worm.verification_log AS v
                      WHERE v.table_uid = t.table_uid ORDER BY v.at DESC LIMIT 1) AS lv ON true
  -- Failures since the last successful full verification: a later
  -- incremental one that passes does not clear them (it reads less).
  CROSS JOIN LATERAL (SELECT count(*) AS failures,
                             coalesce((array_agg(v.problems ORDER BY v.at DESC))[1], 0) AS problems
                        FROM worm.verification_log AS v
                       WHERE v.table_uid = t.table_uid AND NOT v.ok
                         AND v.at > coalesce((SELECT max(x.at) FROM worm.verification_log AS x
                                               WHERE x.table_uid = t.table_uid AND x.kind = 'full' AND x.ok),
                                             '-infinity')) AS f
  CROSS JOIN LATERAL (SELECT coalesce(
                        (SELECT max(v.at) FROM worm.verification_log AS v
                          WHERE v.table_uid = t.table_uid AND v.kind = 'checkpoint'),
                        (SELECT max(l.at) FROM worm.ledger AS l
                          WHERE l.table_uid = t.table_uid AND l.event = 'checkpoint')) AS at) AS lc
 WHERE t.retired_at IS NULL;
COMMENT ON VIEW worm.status IS 'pg_worm: one row per protected table from stored state (no table scan): rows, holds, enforcement, health (ok: no failed verification since the last successful full one), last verification, last checkpoint, next purge due';

GRANT SELECT ON worm.verifications, worm.status TO PUBLIC;
GRANT SELECT ON worm.verification_log, worm.verifications, worm.status TO worm_auditor, worm_admin;

-- worm.attach_timestamp: an RFC 3161 time-stamp of a checkpoint recorded in the ledger
-- (event 'timestamp'); the TSA's signature is checked by worm-verify, not here.
CREATE FUNCTION worm.attach_timestamp(checkpoint jsonb, token bytea)
RETURNS jsonb
STRICT VOLATILE
LANGUAGE c AS 'MODULE_PATHNAME', 'worm_attach_timestamp_wrapper';

-- The table access method of every protected table: heap's storage, with
-- UPDATE, DELETE (but a running worm.purge_expired's) and TRUNCATE refused in
-- the storage layer, whatever triggers are disabled (src/am/).
CREATE FUNCTION worm.worm_heap_handler(internal) RETURNS table_am_handler
    LANGUAGE c AS 'MODULE_PATHNAME', 'worm_heap_handler';
CREATE ACCESS METHOD worm_heap TYPE TABLE HANDLER worm.worm_heap_handler;
COMMENT ON ACCESS METHOD worm_heap IS 'pg_worm: heap storage that refuses UPDATE, DELETE and TRUNCATE (protected tables)';

-- Tables protected by 0.1.0 move to it (each is rewritten once, like VACUUM
-- FULL: an ACCESS EXCLUSIVE lock for the time it takes). The guards let
-- SET ACCESS METHOD worm_heap through; rows are copied as they are.
DO $switch$
DECLARE
    t regclass;
BEGIN
    FOR t IN
        SELECT w.table_name
          FROM worm.tables AS w
          JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) w.table_name::pg_catalog.oid
         WHERE w.retired_at IS NULL
           AND c.relkind OPERATOR(pg_catalog.=) 'r'
           AND c.relam OPERATOR(pg_catalog.<>) (SELECT a.oid FROM pg_catalog.pg_am AS a
                                                 WHERE a.amname OPERATOR(pg_catalog.=) 'worm_heap')
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s SET ACCESS METHOD worm_heap', t);
    END LOOP;
END
$switch$;
