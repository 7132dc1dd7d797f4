-- Every SQL path that would change or remove rows of a protected table is
-- refused with SQLSTATE 42501, a message naming the table and a HINT naming
-- worm.purge_expired. Nothing is left behind (the transaction rolls back).
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
BEGIN;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TABLE audit_log (id int PRIMARY KEY, actor text, action text);
SELECT worm.protect('audit_log', chains => 2);
INSERT INTO audit_log (id, actor, action) VALUES (1, 'dr_house', 'read chart'), (2, 'nurse_joy', 'updated vitals');

-- The plain statements, with their messages and hints.
UPDATE audit_log SET action = 'nothing to see' WHERE id = 1;
DELETE FROM audit_log WHERE id = 2;
TRUNCATE audit_log;

-- And every other route, with their SQLSTATEs.
SELECT pg_temp.try($$UPDATE audit_log SET action = 'x' WHERE false$$) AS update_no_rows;
SELECT pg_temp.try($$DELETE FROM audit_log WHERE id = 42$$) AS delete_no_rows;
SELECT pg_temp.try($$WITH d AS (DELETE FROM audit_log RETURNING *) SELECT count(*) FROM d$$) AS cte_delete;
SELECT pg_temp.try($$WITH u AS (UPDATE audit_log SET actor = 'x' RETURNING *) SELECT count(*) FROM u$$) AS cte_update;
SELECT pg_temp.try($$INSERT INTO audit_log (id, actor, action) VALUES (1, 'x', 'y')
                     ON CONFLICT (id) DO UPDATE SET action = 'overwritten'$$) AS upsert;
SELECT pg_temp.try($$MERGE INTO audit_log t USING (VALUES (1)) s(id) ON t.id = s.id
                     WHEN MATCHED THEN UPDATE SET action = 'merged'$$) AS merge_update;
SELECT pg_temp.try($$MERGE INTO audit_log t USING (VALUES (2)) s(id) ON t.id = s.id
                     WHEN MATCHED THEN DELETE$$) AS merge_delete;
CREATE VIEW audit_v AS SELECT * FROM audit_log;
SELECT pg_temp.try($$UPDATE audit_v SET action = 'via view'$$) AS view_update;
SELECT pg_temp.try($$DELETE FROM audit_v$$) AS view_delete;
-- A child table that is protected, modified through its inheritance parent.
CREATE TABLE events_parent (id int, what text);
CREATE TABLE events_child () INHERITS (events_parent);
SELECT worm.protect('events_child', chains => 1);
INSERT INTO events_child (id, what) VALUES (1, 'admitted');
SELECT pg_temp.try($$UPDATE events_parent SET what = 'discharged'$$) AS parent_update;
SELECT pg_temp.try($$DELETE FROM events_parent$$) AS parent_delete;
SELECT pg_temp.try($$TRUNCATE events_parent$$) AS parent_truncate;
-- Replication role does not switch the triggers off (they are ENABLE ALWAYS).
SET session_replication_role = replica;
SELECT pg_temp.try($$UPDATE audit_log SET action = 'replica'$$) AS replica_update;
SELECT pg_temp.try($$DELETE FROM audit_log$$) AS replica_delete;
RESET session_replication_role;

-- INSERT ... ON CONFLICT DO NOTHING is an insert: it keeps working, and the
-- skipped row leaves no gap in the chain.
INSERT INTO audit_log (id, actor, action) VALUES (1, 'dup', 'dup'), (3, 'dr_grey', 'signed note')
  ON CONFLICT (id) DO NOTHING;
SELECT id, actor, action FROM audit_log ORDER BY id;
SELECT sum(rows_checked) AS rows, bool_and(ok) AS all_ok FROM worm.verify('audit_log');
SELECT sum(rows_checked) AS rows, bool_and(ok) AS all_ok FROM worm.verify('events_child');
ROLLBACK;
