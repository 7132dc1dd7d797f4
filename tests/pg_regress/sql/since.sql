-- worm.verify_since: what came after a checkpoint (the newest, or one given):
-- every chain still holds the checkpoint's head with its link and content,
-- and every later row is intact and linked; a chain purged past the head
-- continues from its purge anchor. Rows before the head are worm.verify's.
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
\set VERBOSITY terse
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TABLE visits (id int, ward text);
SELECT worm.protect('visits', chains => 1, retention => '3 seconds');
-- No checkpoint yet.
SELECT pg_temp.try($$SELECT * FROM worm.verify_since('visits')$$);
INSERT INTO visits SELECT g, 'ward ' || g % 3 FROM generate_series(1, 20) g;
CREATE TEMP TABLE cp1 AS SELECT worm.checkpoint('visits') AS d;
INSERT INTO visits SELECT g, 'ward ' || g % 3 FROM generate_series(21, 25) g;
-- The newest checkpoint, and one given.
SELECT chain, rows_checked, ok, first_bad_seq, regexp_replace(detail, 'ledger entry \d+', 'ledger entry N', 'g') AS detail, problems, head_seq, table_name FROM worm.verify_since('visits');
SELECT chain, rows_checked, ok, regexp_replace(detail, 'ledger entry \d+', 'ledger entry N', 'g') AS detail FROM worm.verify_since('visits', (SELECT d FROM cp1));
CREATE TEMP TABLE cp2 AS SELECT worm.checkpoint('visits') AS d;
SELECT chain, rows_checked, ok, regexp_replace(detail, 'ledger entry \d+', 'ledger entry N', 'g') AS detail FROM worm.verify_since('visits');
-- A digest of another table, an altered digest: refused.
CREATE TABLE other (id int);
SELECT worm.protect('other', chains => 1);
SELECT pg_temp.try($$SELECT * FROM worm.verify_since('other', (SELECT d FROM cp1))$$);
SELECT pg_temp.try($$SELECT * FROM worm.verify_since('visits', jsonb_set((SELECT d FROM cp1), '{checkpoint,rows}', '99'))$$);

-- Tampering by a superuser who switched the guards off (pg_worm is not
-- preloaded here): a row after the checkpoint's head changed, the head row
-- changed, a row before the head changed (verify_since does not read it;
-- worm.verify does). worm_heap refuses UPDATE/DELETE below the triggers; an
-- insider edits the catalog (pg_class.relam) to get past it: detected by
-- verify, not prevented. pg_temp.tamper runs one statement that way and puts
-- relam back.
CREATE FUNCTION pg_temp.tamper(sql text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 'visits'::regclass;   -- 2 = heap: worm_heap's refusals off
  EXECUTE sql;
  UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap')
   WHERE oid = 'visits'::regclass;
END $$;
ALTER EVENT TRIGGER worm_guard_ddl DISABLE;
ALTER TABLE visits DISABLE TRIGGER ALL;
SELECT pg_temp.tamper($$UPDATE visits SET ward = 'forged' WHERE id = 23$$);
SELECT chain, rows_checked, ok, first_bad_seq, regexp_replace(detail, 'ledger entry \d+', 'ledger entry N', 'g') AS detail FROM worm.verify_since('visits', (SELECT d FROM cp1));
SELECT pg_temp.tamper($$UPDATE visits SET ward = 'forged' WHERE id = 20$$);
SELECT chain, rows_checked, ok, first_bad_seq, regexp_replace(detail, 'ledger entry \d+', 'ledger entry N', 'g') AS detail FROM worm.verify_since('visits', (SELECT d FROM cp1));
SELECT pg_temp.tamper($$DELETE FROM visits WHERE id = 20$$);
SELECT chain, rows_checked, ok, first_bad_seq, regexp_replace(detail, 'ledger entry \d+', 'ledger entry N', 'g') AS detail FROM worm.verify_since('visits', (SELECT d FROM cp1));
SELECT pg_temp.tamper($$UPDATE visits SET ward = 'forged' WHERE id = 3$$);
SELECT chain, rows_checked, ok, first_bad_seq, regexp_replace(detail, 'ledger entry \d+', 'ledger entry N', 'g') AS detail FROM worm.verify_since('visits', (SELECT d FROM cp2));
SELECT chain, ok, first_bad_seq FROM worm.verify('visits');
-- A row put outside the table's chains is found through the chain index.
INSERT INTO visits (id, ward, worm_chain, worm_seq, worm_inserted_at, worm_hash) VALUES (99, 'stray', 7, 1, now(), '\x00');
SELECT chain, ok, regexp_replace(detail, 'ledger entry \d+', 'ledger entry N', 'g') AS detail FROM worm.verify_since('visits', (SELECT d FROM cp2)) WHERE chain IS NULL;
ALTER TABLE visits ENABLE ALWAYS TRIGGER zz_worm_chain;
ALTER TABLE visits ENABLE ALWAYS TRIGGER worm_refuse_change;
ALTER TABLE visits ENABLE ALWAYS TRIGGER worm_refuse_row_change;
ALTER EVENT TRIGGER worm_guard_ddl ENABLE;

-- A purge past the checkpoint's head: the chain continues from its anchor.
CREATE TABLE notes (id int);
SELECT worm.protect('notes', chains => 1, retention => '3 seconds');
INSERT INTO notes SELECT g FROM generate_series(1, 5) g;
CREATE TEMP TABLE cp3 AS SELECT worm.checkpoint('notes') AS d;
SELECT pg_sleep(3.5);
INSERT INTO notes SELECT g FROM generate_series(6, 8) g;
SELECT (worm.purge_expired('notes') ->> 'rows_removed')::int AS purged;
SELECT chain, rows_checked, ok, regexp_replace(detail, 'ledger entry \d+', 'ledger entry N', 'g') AS detail FROM worm.verify_since('notes', (SELECT d FROM cp3));

-- A partitioned table: every partition since its own newest checkpoint, or
-- since the ones in the document worm.checkpoint(parent) returned.
CREATE TABLE events (id int, day date NOT NULL) PARTITION BY RANGE (day);
CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
SELECT worm.protect('events', chains => 1);
INSERT INTO events VALUES (1, '2026-01-02'), (2, '2026-02-02');
CREATE TEMP TABLE cp4 AS SELECT worm.checkpoint('events') AS d;
INSERT INTO events VALUES (3, '2026-01-03'), (4, '2026-01-04');
SELECT table_name, chain, rows_checked, ok, regexp_replace(detail, 'ledger entry \d+', 'ledger entry N', 'g') AS detail FROM worm.verify_since('events') ORDER BY table_name, chain;
SELECT table_name, chain, rows_checked, ok FROM worm.verify_since('events', (SELECT d FROM cp4)) ORDER BY table_name, chain;
SELECT pg_temp.try($$SELECT * FROM worm.verify_since('events', (SELECT d -> 'checkpoints' -> 0 FROM cp4))$$);
