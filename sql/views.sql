-- pg_worm: guards and views over the extension's own tables. Hand-written; loaded last.

-- Guards: INSERT and UPDATE only by pg_worm's functions (INSERT also into an
-- empty table: a restore), DELETE and TRUNCATE never; the ledger is append-only. ENABLE ALWAYS: session_replication_role does not
-- switch them off.
CREATE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.tables
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta('internal-update');
CREATE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.anchors
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta('internal-update');
CREATE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.legal_holds
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta('internal-update');
CREATE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.ledger
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta();
CREATE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.trusted_keys
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta();
CREATE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.partitioned_tables
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta('internal-update');
CREATE TRIGGER worm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON worm.merkle_tiles
    FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_guard_meta('internal-update');
ALTER TABLE worm.tables ENABLE ALWAYS TRIGGER worm_guard;
ALTER TABLE worm.anchors ENABLE ALWAYS TRIGGER worm_guard;
ALTER TABLE worm.legal_holds ENABLE ALWAYS TRIGGER worm_guard;
ALTER TABLE worm.partitioned_tables ENABLE ALWAYS TRIGGER worm_guard;
ALTER TABLE worm.merkle_tiles ENABLE ALWAYS TRIGGER worm_guard;
ALTER TABLE worm.ledger ENABLE ALWAYS TRIGGER worm_guard;
ALTER TABLE worm.trusted_keys ENABLE ALWAYS TRIGGER worm_guard;

CREATE FUNCTION worm.chain_heads(tbl regclass)
RETURNS TABLE (chain int, head_seq bigint, head_link text, anchor_seq bigint)
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM worm._chain_heads(tbl::pg_catalog.oid) $$;
COMMENT ON FUNCTION worm.chain_heads(regclass) IS 'pg_worm: the last row (sequence number and link) of every chain of a protected table, and the last purged sequence number';

CREATE VIEW worm.protected_tables AS
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
COMMENT ON VIEW worm.protected_tables IS 'pg_worm: one row per protected table';

CREATE VIEW worm.holds AS
SELECT t.table_name, h.hold_id, h.reason, h.placed_at, h.placed_by
  FROM worm.legal_holds AS h
  JOIN worm.tables AS t ON t.table_uid = h.table_uid
 WHERE h.released_at IS NULL;
COMMENT ON VIEW worm.holds IS 'pg_worm: legal holds in force (worm.legal_holds keeps released ones too)';

CREATE VIEW worm.certificates AS
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

GRANT SELECT ON worm.protected_tables, worm.certificates, worm.holds TO PUBLIC;

-- Roles. Cluster-wide, so created only when missing (another database may
-- have created them); they outlive DROP EXTENSION.
--   worm_auditor: runs every verify function, reads the ledger, the
--                 certificates and (granted by worm.protect) the protected
--                 tables; changes nothing.
--   worm_admin:   protects tables and manages their retention, holds and
--                 purges without owning them.
--   worm_restore: its members' INSERTs (like superusers') keep the worm_
--                 values rows arrive with, when they extend the table's
--                 chains exactly: data-only restores, logical-replication
--                 subscribers. Grants no privilege on any table.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'worm_auditor') THEN
        CREATE ROLE worm_auditor NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'worm_admin') THEN
        CREATE ROLE worm_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'worm_restore') THEN
        CREATE ROLE worm_restore NOLOGIN;
    END IF;
END
$roles$;
-- Every role may call pg_worm's functions; each checks the caller's rights itself.
GRANT USAGE ON SCHEMA worm TO PUBLIC;
GRANT SELECT ON worm.tables, worm.anchors, worm.ledger, worm.trusted_keys, worm.legal_holds, worm.partitioned_tables, worm.merkle_tiles, worm.protected_tables,
    worm.certificates TO worm_auditor, worm_admin;

-- The fallback enforcement that works without shared_preload_libraries: the
-- same checks as the ProcessUtility hook on ddl_command_start, and a refusal of
-- drops that reach protected objects by CASCADE or DROP OWNED on sql_drop.
-- The table access method of every protected table: heap's storage, with
-- UPDATE, DELETE (but a running worm.purge_expired's) and TRUNCATE refused in
-- the storage layer, whatever triggers are disabled (src/am/).
CREATE FUNCTION worm.worm_heap_handler(internal) RETURNS table_am_handler
    LANGUAGE c AS 'MODULE_PATHNAME', 'worm_heap_handler';
CREATE ACCESS METHOD worm_heap TYPE TABLE HANDLER worm.worm_heap_handler;
COMMENT ON ACCESS METHOD worm_heap IS 'pg_worm: heap storage that refuses UPDATE, DELETE and TRUNCATE (protected tables)';

CREATE FUNCTION worm.guard_ddl() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'worm_guard_ddl';
CREATE FUNCTION worm.guard_drop() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'worm_guard_drop';
CREATE EVENT TRIGGER worm_guard_ddl ON ddl_command_start EXECUTE FUNCTION worm.guard_ddl();
CREATE EVENT TRIGGER worm_guard_drop ON sql_drop EXECUTE FUNCTION worm.guard_drop();
-- Columns added to a protected table: checked after the fact (a default can
-- come by many routes) and recorded in the ledger.
CREATE FUNCTION worm.guard_ddl_end() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'worm_guard_ddl_end';
CREATE EVENT TRIGGER worm_guard_ddl_end ON ddl_command_end WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE SCHEMA')
    EXECUTE FUNCTION worm.guard_ddl_end();
-- ALWAYS: session_replication_role = replica does not switch them off.
ALTER EVENT TRIGGER worm_guard_ddl ENABLE ALWAYS;
ALTER EVENT TRIGGER worm_guard_drop ENABLE ALWAYS;
ALTER EVENT TRIGGER worm_guard_ddl_end ENABLE ALWAYS;

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
