-- worm.verify with parallel workers: the chains of one table are split
-- across the verifying backend and parallel workers; the report is the
-- serial one, row for row and word for word. Tampered with here so that the
-- report has something to say about many chains.
-- A database of its own: the tampered table stays out of other files'
-- verify_all.
SELECT current_database() AS regress_db \gset
CREATE DATABASE pg_worm_parallel;
\c pg_worm_parallel
SET client_min_messages = warning;
CREATE EXTENSION pg_worm;
RESET client_min_messages;
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
CREATE TABLE par_notes (id int, note text, vitals jsonb);
SELECT worm.protect('par_notes', chains => 16);
-- A session inserts into one chain (picked from its process id): sixteen
-- sessions fill several of the chains.
SELECT 'INSERT INTO par_notes SELECT g, ''note '' || g, jsonb_build_object(''hr'', 50 + g % 90)
          FROM generate_series(1, 250) g' AS ins \gset
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\c -
:ins;
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
-- In every chain: row 5 changed, row 10 removed; and a row claiming chain 40.
-- worm_heap refuses UPDATE/DELETE below the triggers; an insider edits the
-- catalog (pg_class.relam) to get past it: detected by verify, not prevented.
ALTER EVENT TRIGGER worm_guard_ddl DISABLE;
ALTER EVENT TRIGGER worm_guard_drop DISABLE;
ALTER TABLE par_notes DISABLE TRIGGER ALL;
UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 'par_notes'::regclass;   -- 2 = heap: worm_heap's refusals off
UPDATE par_notes SET note = 'altered' WHERE worm_seq = 5;
DELETE FROM par_notes WHERE worm_seq = 10;
UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = 'par_notes'::regclass;
INSERT INTO par_notes VALUES (9002, 'stray', '{}', 40, 1, now(), decode(repeat('cd', 32), 'hex'));
ALTER TABLE par_notes ENABLE TRIGGER ALL;
ALTER EVENT TRIGGER worm_guard_ddl ENABLE;
ALTER EVENT TRIGGER worm_guard_drop ENABLE;
-- (one row removed per chain written: 4000 rows written in all)
SELECT count(DISTINCT worm_chain) >= 4 AS several_chains,
       count(*) + count(DISTINCT worm_chain) - 2 AS written
  FROM par_notes;

-- The serial report (no workers).
SET worm.verify_parallel_workers = 0;
CREATE TEMP TABLE serial_report AS
  SELECT v.* FROM worm.verify('par_notes') WITH ORDINALITY AS v(chain, rows_checked, ok,
    first_bad_seq, detail, problems, head_seq, head_link, table_name, n);
SELECT DISTINCT ok, first_bad_seq, problems, detail
  FROM serial_report WHERE chain BETWEEN 0 AND 15 AND rows_checked > 0;
SELECT chain, rows_checked, ok, detail FROM serial_report WHERE chain IS NULL OR chain > 15 ORDER BY n;
SELECT count(*) AS report_rows,
       sum(rows_checked) = (SELECT count(*) FROM par_notes) AS every_row_checked
  FROM serial_report;

-- Parallel: max_parallel_workers_per_gather (the default of
-- worm.verify_parallel_workers, -1) allows two workers; a table this small
-- needs min_parallel_table_scan_size lowered. A DEBUG1 line says how many ran.
SET worm.verify_parallel_workers = -1;
SET max_parallel_workers_per_gather = 2;
SET min_parallel_table_scan_size = 0;
CREATE TEMP TABLE parallel_report (LIKE serial_report);
SET client_min_messages = debug1;
INSERT INTO parallel_report
  SELECT v.* FROM worm.verify('par_notes') WITH ORDINALITY AS v(chain, rows_checked, ok,
    first_bad_seq, detail, problems, head_seq, head_link, table_name, n);
RESET client_min_messages;
-- The same rows in the same order (n is the position in the report).
SELECT (SELECT count(*) FROM parallel_report) AS parallel_rows,
       (SELECT count(*) FROM (TABLE parallel_report EXCEPT ALL TABLE serial_report) d) AS only_parallel,
       (SELECT count(*) FROM (TABLE serial_report EXCEPT ALL TABLE parallel_report) d) AS only_serial;

-- The leader not taking chains: the workers read every one of them
-- (DEBUG2 counts them), and the report is still the same.
SET parallel_leader_participation = off;
TRUNCATE parallel_report;
SET client_min_messages = debug2;
INSERT INTO parallel_report
  SELECT v.* FROM worm.verify('par_notes') WITH ORDINALITY AS v(chain, rows_checked, ok,
    first_bad_seq, detail, problems, head_seq, head_link, table_name, n);
RESET client_min_messages;
SELECT (SELECT count(*) FROM parallel_report) AS parallel_rows,
       (SELECT count(*) FROM (TABLE parallel_report EXCEPT ALL TABLE serial_report) d) AS only_parallel,
       (SELECT count(*) FROM (TABLE serial_report EXCEPT ALL TABLE parallel_report) d) AS only_serial;
RESET parallel_leader_participation;

-- verify_all reads each table the same way.
SELECT count(*) AS differing FROM (
  SELECT chain, rows_checked, ok, first_bad_seq, detail, problems, head_seq, head_link
    FROM worm.verify_all() WHERE table_name = 'par_notes'
  EXCEPT ALL
  SELECT chain, rows_checked, ok, first_bad_seq, detail, problems, head_seq, head_link
    FROM serial_report) d;

-- Serial again when the setting says 0, or the table has fewer pages than
-- min_parallel_table_scan_size: no DEBUG1 line.
SET client_min_messages = debug1;
SET worm.verify_parallel_workers = 0;
SELECT count(*) FROM worm.verify('par_notes');
RESET worm.verify_parallel_workers;
RESET min_parallel_table_scan_size;
SELECT count(*) FROM worm.verify('par_notes');
RESET client_min_messages;
SELECT setting, boot_val FROM pg_settings WHERE name = 'worm.verify_parallel_workers';
RESET max_parallel_workers_per_gather;
\c :regress_db
DROP DATABASE pg_worm_parallel;
