-- Watching: stored verification results (worm.verifications), the health
-- view (worm.status, read from stored state, no table scan) and the
-- background watcher's settings. The watcher itself runs only when pg_worm is
-- preloaded (tests/scenarios/75_watch.sh).
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
\set VERBOSITY terse
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TABLE w_visits (id int, ward text);
SELECT worm.protect('w_visits', chains => 2, retention => '30 days');
INSERT INTO w_visits SELECT g, 'ward ' || g % 3 FROM generate_series(1, 7) g;

-- worm.status on a fresh table: nothing verified, no checkpoint yet.
SELECT table_name, rows, chains, retention, active_holds, ok, problems, last_verified_at, last_verification_kind,
       last_verification_ok, last_verification_problems, last_full_ok_at, last_checkpoint_at, checkpoint_age,
       next_purge_due BETWEEN now() + interval '30 days' - interval '1 hour' AND now() + interval '30 days' AS purge_due_in_30_days,
       enforcement LIKE 'triggers and event triggers only%' AS weaker_mode
  FROM worm.status WHERE table_name = 'w_visits'::regclass;
SELECT array_agg(attname ORDER BY attnum) AS status_columns
  FROM pg_attribute WHERE attrelid = 'worm.status'::regclass AND attnum > 0;
SELECT array_agg(attname ORDER BY attnum) AS verifications_columns
  FROM pg_attribute WHERE attrelid = 'worm.verifications'::regclass AND attnum > 0;

-- Manual verifications record their results, one row per table and run.
SELECT count(*) AS chains_ok FROM worm.verify('w_visits') WHERE ok;
SELECT pg_temp.try($$SELECT * FROM worm.verify_since('w_visits')$$) AS no_checkpoint_yet;
SELECT worm.checkpoint('w_visits') IS NOT NULL AS checkpointed;
INSERT INTO w_visits VALUES (8, 'ward 2');
SELECT count(*) AS chains_ok FROM worm.verify_since('w_visits') WHERE ok;
SELECT count(*) AS chains_ok FROM worm.verify_all() WHERE ok AND table_name = 'w_visits';
SELECT table_name, kind, ok, rows_checked, problems, regexp_replace(detail, 'ledger entry \d+', 'ledger entry N') AS detail,
       table_label, source, run_by = session_user AS by_me
  FROM worm.verifications WHERE table_label = 'public.w_visits' ORDER BY at;
SELECT table_name, rows, ok, problems, last_verification_kind, last_verification_ok, last_full_ok_at IS NOT NULL AS full_ok,
       last_checkpoint_at IS NOT NULL AS checkpointed, checkpoint_age < interval '1 hour' AS recent_checkpoint
  FROM worm.status WHERE table_name = 'w_visits'::regclass;

-- A read-only transaction verifies all the same, and stores nothing.
BEGIN READ ONLY;
SELECT count(*) AS chains_ok FROM worm.verify('w_visits') WHERE ok;
COMMIT;
SELECT count(*) AS results FROM worm.verifications WHERE table_label = 'public.w_visits';

-- A failure is recorded with the problems (no ledger entry: the caller has
-- the report; the watcher's failures go to the ledger).
BEGIN;
-- worm_heap refuses UPDATE/DELETE below the triggers; an insider edits the
-- catalog (pg_class.relam) to get past it: detected by verify, not prevented.
ALTER EVENT TRIGGER worm_guard_ddl DISABLE;
ALTER TABLE w_visits DISABLE TRIGGER ALL;
UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 'w_visits'::regclass;   -- 2 = heap: worm_heap's refusals off
UPDATE w_visits SET ward = 'ward X' WHERE id = 3;
UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = 'w_visits'::regclass;
ALTER TABLE w_visits ENABLE TRIGGER ALL;
ALTER EVENT TRIGGER worm_guard_ddl ENABLE;
-- (the changed row's chain depends on the session's process id: compare, do not print)
SELECT v.chain = c.worm_chain AS changed_rows_chain, v.ok, v.first_bad_seq = c.worm_seq AS at_changed_row
  FROM worm.verify('w_visits') v, (SELECT worm_chain, worm_seq FROM w_visits WHERE id = 3) c WHERE NOT v.ok;
SELECT kind, ok, problems,
       replace(detail, format('chain %s: row %s ', c.worm_chain, c.worm_seq), 'chain C: row S ') AS detail
  FROM worm.verifications, (SELECT worm_chain, worm_seq FROM w_visits WHERE id = 3) c
 WHERE table_label = 'public.w_visits' ORDER BY at DESC LIMIT 1;
SELECT ok, problems, last_verification_kind, last_verification_ok, last_verification_problems FROM worm.status WHERE table_name = 'w_visits'::regclass;
-- An incremental verification that passes later does not clear it.
SELECT count(*) AS chains_ok FROM worm.verify_since('w_visits') WHERE ok;
SELECT ok, problems, last_verification_kind, last_verification_ok FROM worm.status WHERE table_name = 'w_visits'::regclass;
SELECT count(*) AS failure_entries FROM worm.ledger WHERE event = 'verification_failed';
ROLLBACK;

-- Holds show in worm.status.
SELECT worm.legal_hold('w_visits', 'litigation 7') IS NOT NULL AS held;
SELECT active_holds FROM worm.status WHERE table_name = 'w_visits'::regclass;

-- The stored results change only through pg_worm.
SELECT pg_temp.try($$UPDATE worm.verification_log SET ok = true$$) AS update_log;
SELECT pg_temp.try($$DELETE FROM worm.verification_log$$) AS delete_log;
SELECT pg_temp.try($$TRUNCATE worm.verification_log$$) AS truncate_log;
SELECT pg_temp.try($$INSERT INTO worm.verification_log SELECT * FROM worm.verification_log LIMIT 1$$) AS insert_log;
SELECT pg_temp.try($$DROP TABLE worm.verification_log$$) AS drop_log;
SELECT pg_temp.try($$UPDATE worm.verifications SET ok = true$$) AS update_view;
CREATE ROLE w_app;
SET ROLE w_app;
SELECT pg_temp.try($$DELETE FROM worm.verification_log$$) AS app_delete;
SELECT count(*) >= 0 AS app_reads_status FROM worm.status;
RESET ROLE;
DROP ROLE w_app;

-- The watcher's settings: reloaded with the configuration (SIGHUP), so
-- SET is refused; invalid values are refused with the server's messages.
SELECT name, setting, unit, context, boot_val FROM pg_settings
 WHERE name IN ('worm.databases', 'worm.verify_interval', 'worm.full_verify_interval',
                'worm.checkpoint_interval', 'worm.verification_retention')
 ORDER BY name;
SHOW worm.verify_interval;
SET worm.verify_interval = '1min';
ALTER SYSTEM SET worm.verify_interval = -1;
ALTER SYSTEM SET worm.full_verify_interval = 'often';
ALTER SYSTEM SET worm.checkpoint_interval = '5 parsecs';
ALTER SYSTEM SET worm.verification_retention = '100000 days';
