-- Retention, legal holds, purge, deletion certificates and the ledger.
-- Retention counts from each row's insertion time against the purging
-- transaction's start, so this file commits (each statement on its own)
-- and waits for a 2-second retention to pass.
-- A database of its own, so that the ledger it prints holds only this
-- file's entries, alone or in the schedule.
\set SHOW_CONTEXT never
SELECT current_database() AS regress_db \gset
CREATE DATABASE pg_worm_retention;
\c pg_worm_retention
SET client_min_messages = warning;
CREATE EXTENSION pg_worm;
RESET client_min_messages;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TABLE discharge_notes (id int, note text);
SELECT worm.protect('discharge_notes', retention => '2 seconds', chains => 1,
                    legal_basis => 'test policy: 2 seconds');

-- A table without retention keeps its rows for ever: nothing to purge.
CREATE TABLE forever (id int);
SELECT worm.protect('forever', chains => 1);
SELECT worm.purge_expired('forever');

-- An empty table: nothing removed, so no certificate and no ledger entry.
CREATE TABLE empty_notes (id int);
SELECT worm.protect('empty_notes', retention => '1 day', chains => 1);
SELECT c ->> 'rows_removed' AS rows_removed, c -> 'certificate' AS certificate,
       c -> 'ledger_entry' AS ledger_entry, c ->> 'detail' AS detail
  FROM (SELECT worm.purge_expired('empty_notes') AS c) s;

INSERT INTO discharge_notes SELECT g, 'old note ' || g FROM generate_series(1, 5) g;
-- Before expiry nothing leaves (and no certificate is issued).
SELECT c ->> 'rows_removed' AS rows_removed, c -> 'certificate' IS NULL OR c -> 'certificate' = 'null' AS no_certificate
  FROM (SELECT worm.purge_expired('discharge_notes') AS c) s;
SELECT count(*) AS purge_entries FROM worm.ledger WHERE event = 'purge';
SELECT pg_sleep(2.5);
INSERT INTO discharge_notes SELECT g, 'new note ' || g FROM generate_series(6, 8) g;

-- A legal hold suspends every purge until it is released; a table may be
-- held for several matters at once, each released by its hold_id.
SELECT worm.legal_hold('discharge_notes', 'subpoena 2026-0042') ->> 'hold_id' AS first_hold;
SELECT legal_hold, hold_reason FROM worm.protected_tables WHERE table_name = 'discharge_notes'::regclass;
SELECT pg_temp.try($$SELECT worm.purge_expired('discharge_notes')$$) ~ '^55000: table public.discharge_notes is under legal hold since .*: #1 subpoena 2026-0042$' AS refused_on_hold;
SELECT worm.legal_hold('discharge_notes', 'audit 2026-17') ->> 'hold_id' AS second_hold;
SELECT table_name, hold_id, reason, placed_by = session_user AS by_me FROM worm.holds ORDER BY hold_id;
SELECT worm.release_hold('discharge_notes', 'which one?');
SELECT worm.release_hold('discharge_notes', 1, 'subpoena withdrawn') -> 'document' ->> 'hold_reason' AS released_hold;
SELECT pg_temp.try($$SELECT worm.purge_expired('discharge_notes')$$) ~ ': #2 audit 2026-17$' AS still_held_by_the_second;
SELECT worm.release_hold('discharge_notes', 1, 'twice');
SELECT worm.release_hold('discharge_notes', 'audit closed') -> 'document' -> 'hold_id' AS released_the_only_one_left;
SELECT worm.release_hold('discharge_notes', 'none left');
SELECT legal_hold, hold_reason FROM worm.protected_tables WHERE table_name = 'discharge_notes'::regclass;
SELECT hold_id, reason, released_at IS NOT NULL AS released, release_reason FROM worm.legal_holds ORDER BY hold_id;
SELECT worm.legal_hold('discharge_notes', '  ');

-- Only the owner purges.
CREATE ROLE worm_regress_clerk;
GRANT USAGE ON SCHEMA worm TO worm_regress_clerk;
GRANT SELECT, INSERT ON discharge_notes TO worm_regress_clerk;
SET ROLE worm_regress_clerk;
SELECT worm.purge_expired('discharge_notes');
SELECT worm.legal_hold('discharge_notes', 'not mine');
RESET ROLE;
REVOKE ALL ON discharge_notes FROM worm_regress_clerk;
REVOKE ALL ON SCHEMA worm FROM worm_regress_clerk;
DROP ROLE worm_regress_clerk;

-- The purge: exactly the expired prefix, and a certificate.
CREATE TEMP TABLE cert AS SELECT worm.purge_expired('discharge_notes') AS c;
SELECT c -> 'certificate' ->> 'event' AS event,
       c -> 'certificate' ->> 'type' AS type,
       c -> 'certificate' -> 'removed' ->> 'rows' AS rows_removed,
       length(c -> 'certificate' -> 'removed' ->> 'merkle_root') AS merkle_root_hex_len,
       c -> 'certificate' -> 'retention' AS retention,
       c -> 'certificate' -> 'legal_hold' AS legal_hold,
       c -> 'certificate' -> 'verification_before' ->> 'ok' AS verified_before,
       c -> 'certificate' -> 'verification_before' ->> 'rows_checked' AS rows_checked,
       c -> 'certificate' ->> 'method' AS method
  FROM cert;
SELECT ch ->> 'chain' AS chain, ch ->> 'first_seq' AS first_seq, ch ->> 'last_seq' AS last_seq,
       ch ->> 'count' AS count, ch ->> 'previous_anchor_seq' AS previous_anchor,
       ch ->> 'anchor_link' = (SELECT encode(link, 'hex') FROM worm.anchors a
                                 JOIN worm.tables t USING (table_uid)
                                WHERE t.table_name = 'discharge_notes'::regclass) AS anchor_recorded
  FROM cert, jsonb_array_elements(c -> 'certificate' -> 'chains') AS ch;
SELECT id, note, worm_seq FROM discharge_notes ORDER BY worm_seq;
SELECT chain, rows_checked, ok, first_bad_seq, detail FROM worm.verify('discharge_notes');
SELECT rows FROM worm.protected_tables WHERE table_name = 'discharge_notes'::regclass;
-- New rows continue the chain after the purge.
INSERT INTO discharge_notes VALUES (9, 'after the purge');
SELECT chain, rows_checked, ok, detail FROM worm.verify('discharge_notes');

-- The certificate verifies; changed in any field, it does not.
SELECT worm.verify_certificate(c) AS genuine FROM cert;
SELECT worm.verify_certificate(jsonb_set(c, '{certificate,removed,rows}', '6')) AS rows_changed FROM cert;
SELECT worm.verify_certificate(jsonb_set(c, '{certificate,cutoff}', '"2020-01-01T00:00:00.000000Z"')) AS cutoff_changed FROM cert;
SELECT worm.verify_certificate(jsonb_set(c, '{ledger_entry,seq}', '1')) AS moved_in_ledger FROM cert;
SELECT table_name, rows_removed, retention, certificate_id IS NOT NULL AS has_id
  FROM worm.certificates ORDER BY ledger_seq;

-- Retention is lengthened only.
SELECT worm.set_retention('discharge_notes', '1 second');
SELECT worm.set_retention('discharge_notes', NULL);
SELECT worm.set_retention('discharge_notes', '6 years', 'HIPAA 45 CFR 164.316(b)(2)') -> 'document' -> 'retention' AS change;
SELECT pg_temp.try($$SELECT worm.set_retention('discharge_notes', '2190 days')$$) AS days_vs_years;
SELECT retention, legal_basis FROM worm.protected_tables WHERE table_name = 'discharge_notes'::regclass;

-- The ledger records every event, chained.
SELECT seq, event, document -> 'table' ->> 'name' AS table_name FROM worm.ledger ORDER BY seq;
SELECT entries, ok, detail FROM worm.verify_ledger();

-- pg_worm's own tables change only through its functions.
UPDATE worm.ledger SET event = 'nothing happened';
DELETE FROM worm.anchors;
TRUNCATE worm.ledger;
UPDATE worm.tables SET legal_hold = false;
SET session_replication_role = replica;
SELECT pg_temp.try($$DELETE FROM worm.ledger$$) AS replica_delete;
RESET session_replication_role;

-- A damaged table is not purged: the evidence stays. (A superuser disables
-- the event triggers to be able to switch the table's triggers off. worm_heap
-- refuses UPDATE/DELETE below the triggers; an insider edits the catalog
-- (pg_class.relam) to get past it: detected by verify, not prevented.)
ALTER EVENT TRIGGER worm_guard_ddl DISABLE;
ALTER TABLE discharge_notes DISABLE TRIGGER ALL;
UPDATE discharge_notes SET note = 'quietly edited' WHERE id = 7;   -- refused by the storage layer
UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 'discharge_notes'::regclass;   -- 2 = heap: worm_heap's refusals off
UPDATE discharge_notes SET note = 'quietly edited' WHERE id = 7;
UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = 'discharge_notes'::regclass;
ALTER TABLE discharge_notes ENABLE ALWAYS TRIGGER zz_worm_chain, ENABLE ALWAYS TRIGGER worm_refuse_change,
                            ENABLE ALWAYS TRIGGER worm_refuse_row_change;
ALTER EVENT TRIGGER worm_guard_ddl ENABLE;
SELECT worm.purge_expired('discharge_notes');
\c :regress_db
DROP DATABASE pg_worm_retention;
