-- worm.verify finds every kind of damage and reports each broken chain, in
-- plain words. A superuser can switch the triggers off when pg_worm is not
-- preloaded; the table's access method still refuses UPDATE, DELETE and
-- TRUNCATE, but a superuser who edits the catalog gets past that too: that is
-- what verification is for.
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
BEGIN;
CREATE TABLE ledger (id int, entry text);
SELECT worm.protect('ledger', chains => 1);
INSERT INTO ledger SELECT g, 'entry ' || g FROM generate_series(1, 10) g;
CREATE TABLE ledger2 (id int, entry text);
SELECT worm.protect('ledger2', chains => 1);
INSERT INTO ledger2 SELECT g, 'entry ' || g FROM generate_series(1, 10) g;
CREATE TABLE ledger3 (id int, entry text);
SELECT worm.protect('ledger3', chains => 1);
INSERT INTO ledger3 SELECT g, 'entry ' || g FROM generate_series(1, 5) g;
SELECT table_name, chain, rows_checked, ok, detail FROM worm.verify_all() ORDER BY table_name, chain;

-- The insider's edits. Switching the triggers off is refused (here by the
-- event trigger: pg_worm is not preloaded) ...
ALTER TABLE ledger DISABLE TRIGGER ALL;
-- ... but a superuser can disable the event triggers first. The rows still
-- cannot be changed or removed: the table's access method, worm_heap, refuses
-- UPDATE, DELETE (also through MERGE) and TRUNCATE in the storage layer, below
-- the triggers, and the table cannot be moved off it.
ALTER EVENT TRIGGER worm_guard_ddl DISABLE;
ALTER EVENT TRIGGER worm_guard_drop DISABLE;
ALTER TABLE ledger DISABLE TRIGGER ALL;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'ledger'::regclass ORDER BY 1;
UPDATE ledger SET entry = 'entry 3 (altered)' WHERE id = 3;
DELETE FROM ledger WHERE id IN (6, 7);
MERGE INTO ledger l USING (VALUES (3)) s(id) ON l.id = s.id WHEN MATCHED THEN DELETE;
TRUNCATE ledger;
ALTER TABLE ledger SET ACCESS METHOD heap;
SELECT count(*) AS rows, count(*) FILTER (WHERE entry = 'entry ' || id) AS unchanged, max(id) AS max_id FROM ledger;
SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = 'ledger'::regclass;
-- worm_heap refuses UPDATE/DELETE below the triggers; an insider edits the
-- catalog (pg_class.relam) to get past it: detected by verify, not prevented
-- (preloaded, pg_worm refuses DML on pg_class). What the insider then does to
-- rows is detected.
UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 'ledger'::regclass;   -- 2 = heap: worm_heap's refusals off
UPDATE ledger SET entry = 'entry 3 (altered)' WHERE id = 3;        -- content changed
DELETE FROM ledger WHERE id IN (6, 7);                              -- rows removed from the middle
UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = 'ledger'::regclass;
ALTER TABLE ledger ENABLE TRIGGER ALL;
SELECT chain, rows_checked, ok, first_bad_seq, problems, detail FROM worm.verify('ledger');

ALTER TABLE ledger2 DISABLE TRIGGER ALL;
-- A forged row at position 11 with a made-up link, and one claiming a chain the table does not have.
INSERT INTO ledger2 VALUES (11, 'forged', 0, 11, now(), decode(repeat('ab', 32), 'hex'));
INSERT INTO ledger2 VALUES (12, 'stray', 7, 1, now(), decode(repeat('cd', 32), 'hex'));
-- Two rows swapped: each keeps its link, but the order no longer matches
-- (an UPDATE: through the catalog edit again).
UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 'ledger2'::regclass;
UPDATE ledger2 SET worm_seq = -worm_seq WHERE worm_seq IN (4, 5);
UPDATE ledger2 SET worm_seq = 9 + worm_seq WHERE worm_seq IN (-4, -5);
UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = 'ledger2'::regclass;
ALTER TABLE ledger2 ENABLE TRIGGER ALL;
SELECT chain, rows_checked, ok, first_bad_seq, problems, detail FROM worm.verify('ledger2') ORDER BY chain;

-- verify_all reports every broken chain of every table, not only the first.
SELECT table_name, chain, ok, first_bad_seq FROM worm.verify_all() ORDER BY table_name, chain;

ROLLBACK;

-- Verification reads only: in a read-only transaction (so also on a hot
-- standby) it assigns no transaction id. (In a read-write transaction on a
-- primary it stores its result in worm.verifications: its one write.)
CREATE TABLE ro_check (id int, entry text);
SELECT worm.protect('ro_check', chains => 2);
INSERT INTO ro_check SELECT g, 'entry ' || g FROM generate_series(1, 5) g;
BEGIN READ ONLY;
SELECT sum(rows_checked) AS rows, bool_and(ok) AS all_ok FROM worm.verify('ro_check');
SELECT pg_current_xact_id_if_assigned() IS NULL AS no_xid;
ROLLBACK;
BEGIN READ ONLY;
SELECT sum(rows_checked) AS rows, bool_and(ok) AS all_ok FROM worm.verify_all();
ROLLBACK;

-- Errors.
BEGIN;
CREATE TABLE plain (id int);
SELECT * FROM worm.verify('plain');
CREATE ROLE worm_regress_nosel;
GRANT USAGE ON SCHEMA worm TO worm_regress_nosel;
SET ROLE worm_regress_nosel;
SELECT * FROM worm.verify('ro_check');
RESET ROLE;
ROLLBACK;

-- DROP TABLE is refused (here by the event trigger, as pg_worm is not
-- preloaded). A superuser can disable the event triggers first; the table that
-- then disappears is reported by verify_all.
DROP TABLE ro_check;
ALTER EVENT TRIGGER worm_guard_ddl DISABLE;
ALTER EVENT TRIGGER worm_guard_drop DISABLE;
DROP TABLE ro_check;
ALTER EVENT TRIGGER worm_guard_ddl ENABLE;
ALTER EVENT TRIGGER worm_guard_drop ENABLE;
SELECT table_name, chain, rows_checked, ok, detail FROM worm.verify_all();
