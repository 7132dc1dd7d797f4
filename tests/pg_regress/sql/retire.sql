-- worm.retire: a protected table whose every row has passed its retention
-- and is under no hold is dropped, after verifying it, with a deletion
-- certificate for the whole table that still verifies once the table is gone.
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
\set VERBOSITY terse
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TABLE visits_2019 (id int, ward text);
SELECT worm.protect('visits_2019', retention => '2 seconds', chains => 2);
INSERT INTO visits_2019 SELECT g, 'ward ' || g % 3 FROM generate_series(1, 6) g;
-- Rows within their retention: refused.
SELECT pg_temp.try($$SELECT worm.retire('visits_2019')$$);
SELECT pg_sleep(2.5);
-- Under a legal hold: refused.
SELECT worm.legal_hold('visits_2019', 'matter 7') ->> 'hold_id' AS hold;
SELECT pg_temp.try($$SELECT worm.retire('visits_2019')$$) ~ '^55000: table public.visits_2019 is under legal hold' AS refused_on_hold;
SELECT worm.release_hold('visits_2019', 1, 'matter closed') IS NOT NULL AS released;
-- Not the owner: refused.
CREATE ROLE retire_clerk;
SET ROLE retire_clerk;
SELECT pg_temp.try($$SELECT worm.retire('visits_2019')$$);
RESET ROLE;
-- Every row expired, no hold: dropped, with a certificate.
CREATE TEMP TABLE r AS SELECT worm.retire('visits_2019') AS c;
SELECT c ->> 'rows_removed' AS rows_removed, c ->> 'table_dropped' AS table_dropped,
       c -> 'certificate' ->> 'event' AS event, c -> 'certificate' -> 'removed' ->> 'rows' AS certified_rows,
       jsonb_array_length(c -> 'certificate' -> 'final_heads') AS final_heads,
       c -> 'certificate' ->> 'method' AS method
  FROM r;
SELECT to_regclass('visits_2019') IS NULL AS gone;
SELECT count(*) AS still_listed FROM worm.protected_tables WHERE table_uid = (SELECT (c -> 'certificate' -> 'table' ->> 'uid')::uuid FROM r);
SELECT table_name IS NULL AS name_cleared, retired_at IS NOT NULL AS retired FROM worm.tables
 WHERE table_uid = (SELECT (c -> 'certificate' -> 'table' ->> 'uid')::uuid FROM r);
SELECT worm.verify_certificate(c) AS certificate_verifies FROM r;
SELECT table_name, rows_removed FROM worm.certificates WHERE table_name = 'public.visits_2019' ORDER BY ledger_seq;
SELECT count(*) AS verify_all_rows_for_it FROM worm.verify_all() WHERE table_name LIKE '%visits_2019%';
SELECT ok FROM worm.verify_ledger();
-- A name taken again is a new table, not the retired one.
CREATE TABLE visits_2019 (id int);
SELECT pg_temp.try($$SELECT count(*) FROM worm.verify('visits_2019')$$);
DROP TABLE visits_2019;

-- An empty table kept for ever may go; one with rows kept for ever may not.
CREATE TABLE scratch (id int);
SELECT worm.protect('scratch');
SELECT worm.retire('scratch') ->> 'rows_removed' AS rows_removed;
CREATE TABLE kept_forever (id int);
SELECT worm.protect('kept_forever');
INSERT INTO kept_forever VALUES (1);
SELECT pg_temp.try($$SELECT worm.retire('kept_forever')$$);
SELECT pg_temp.try($$SELECT worm.retire('pg_class')$$);

-- DROP TABLE of a protected table retires it the same way when it can
-- (pg_partman's retention drops partitions so), and is refused with the
-- reason when it cannot.
CREATE TABLE visits_2020 (id int);
SELECT worm.protect('visits_2020', retention => '1 second', chains => 1);
INSERT INTO visits_2020 VALUES (1), (2), (3);
SELECT pg_temp.try($$DROP TABLE visits_2020$$);
SELECT pg_sleep(1.5);
DROP TABLE visits_2020;
SELECT to_regclass('visits_2020') IS NULL AS gone;
SELECT table_name, rows_removed FROM worm.certificates WHERE table_name = 'public.visits_2020';
SELECT worm.verify_certificate(certificate) AS certificate_verifies FROM worm.certificates WHERE table_name = 'public.visits_2020';
SELECT pg_temp.try($$DROP TABLE kept_forever$$);
