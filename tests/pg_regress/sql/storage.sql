-- worm_heap, the table access method of every protected table: heap storage
-- whose UPDATE, DELETE and TRUNCATE are refused in the storage layer, below
-- the triggers. pg_worm is not preloaded here, and a superuser disables every
-- pg_worm event trigger and the tables' triggers: still no row changes.
-- A database of its own: VACUUM FULL does not run in a transaction, and the
-- tables made here stay out of the other files' worm.verify_all.
\set SHOW_CONTEXT never
\set VERBOSITY terse
SELECT current_database() AS regress_db \gset
CREATE DATABASE pg_worm_storage;
\c pg_worm_storage
SET client_min_messages = warning;
CREATE EXTENSION pg_worm;
-- (the NOTICE that pg_worm runs without its hooks: not shown)
-- A statement's outcome: ok, or its SQLSTATE and message.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- Each table's rows in chain order, worm_ columns included, as one hash.
CREATE FUNCTION pg_temp.rows_of(t regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE h text;
BEGIN
  EXECUTE format('SELECT md5(coalesce(string_agg(x::text, '','' ORDER BY worm_chain, worm_seq), '''')) FROM %s x', t) INTO h;
  RETURN h;
END $$;
CREATE FUNCTION pg_temp.am_of(t regclass) RETURNS name LANGUAGE sql AS $$
  SELECT a.amname FROM pg_class c LEFT JOIN pg_am a ON a.oid = c.relam WHERE c.oid = t $$;
CREATE FUNCTION pg_temp.verified(t regclass) RETURNS text LANGUAGE sql AS $$
  SELECT format('%s chain(s), %s row(s), ok: %s', count(*), sum(rows_checked), bool_and(ok))
    FROM worm.verify(t) $$;

-- The access method and its handler.
SELECT amname, amhandler, amtype, obj_description(oid, 'pg_am') AS description
  FROM pg_am WHERE amname = 'worm_heap';

-- Every protected table uses it: an empty one, one protected with rows (they
-- are chained and the table switched in the same statement), every partition
-- of a protected partitioned table, also those created or attached after
-- protect and the leaves of a partitioned partition (a partitioned table has
-- no storage, so no access method).
CREATE TABLE empty_notes (id int, note text);
SELECT worm.protect('empty_notes', chains => 1);
CREATE TABLE notes (id int PRIMARY KEY, note text);
INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 6) g;
SELECT worm.protect('notes', chains => 2);
CREATE TABLE events (id int, day date NOT NULL) PARTITION BY RANGE (day);
CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
SELECT worm.protect('events', chains => 1);
CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
CREATE TABLE events_3 (LIKE events);
ALTER TABLE events ATTACH PARTITION events_3 FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
CREATE TABLE events_q2 PARTITION OF events FOR VALUES FROM ('2026-04-01') TO ('2026-07-01') PARTITION BY RANGE (day);
CREATE TABLE events_q2_4 PARTITION OF events_q2 FOR VALUES FROM ('2026-04-01') TO ('2026-05-01');
INSERT INTO events VALUES (1, '2026-01-02'), (2, '2026-02-02');
SELECT c.relname, c.relkind, a.amname
  FROM pg_class c LEFT JOIN pg_am a ON a.oid = c.relam
 WHERE c.relname IN ('empty_notes', 'notes', 'events', 'events_1', 'events_2', 'events_3', 'events_q2', 'events_q2_4')
 ORDER BY 1;
SELECT pg_temp.verified('notes') AS notes, pg_temp.verified('events') AS events;

-- Taking a protected table off worm_heap is refused: by the event trigger ...
SELECT pg_temp.try($$ALTER TABLE notes SET ACCESS METHOD heap$$);
SELECT pg_temp.try($$ALTER TABLE events_2 SET ACCESS METHOD heap$$);

-- ... and with every pg_worm event trigger and every trigger of the tables
-- in schema public disabled (which a superuser can do when pg_worm is not
-- preloaded), by the storage layer: UPDATE, DELETE (also through MERGE,
-- ON CONFLICT DO UPDATE, a CTE and the partitioned table) and TRUNCATE of a
-- table holding rows fail with 42501, and no row changes.
SELECT tgrelid::regclass::text AS table_name, count(*) AS triggers, count(*) FILTER (WHERE tgenabled = 'A') AS always_enabled
  FROM pg_trigger JOIN pg_class ON pg_class.oid = tgrelid
 WHERE NOT tgisinternal AND relnamespace = 'public'::regnamespace GROUP BY 1 ORDER BY 1;
CREATE TEMP TABLE before AS
  SELECT pg_temp.rows_of('notes') AS notes, pg_temp.rows_of('events_1') AS events_1,
         pg_temp.rows_of('events_2') AS events_2;
ALTER EVENT TRIGGER worm_guard_ddl DISABLE;
ALTER EVENT TRIGGER worm_guard_ddl_end DISABLE;
ALTER EVENT TRIGGER worm_guard_drop DISABLE;
DO $$
DECLARE t regclass;
BEGIN
  FOR t IN SELECT DISTINCT tgrelid::regclass FROM pg_trigger JOIN pg_class ON pg_class.oid = tgrelid
            WHERE NOT tgisinternal AND relnamespace = 'public'::regnamespace LOOP
    EXECUTE format('ALTER TABLE %s DISABLE TRIGGER ALL', t);
  END LOOP;
END $$;
SELECT evtname, evtenabled FROM pg_event_trigger ORDER BY 1;
SELECT tgrelid::regclass::text AS table_name, count(*) AS triggers, count(*) FILTER (WHERE tgenabled = 'D') AS disabled
  FROM pg_trigger JOIN pg_class ON pg_class.oid = tgrelid
 WHERE NOT tgisinternal AND relnamespace = 'public'::regnamespace GROUP BY 1 ORDER BY 1;
SELECT pg_temp.try($$UPDATE notes SET note = 'changed' WHERE id = 1$$);
SELECT pg_temp.try($$DELETE FROM notes WHERE id = 2$$);
SELECT pg_temp.try($$WITH d AS (DELETE FROM notes RETURNING *) SELECT count(*) FROM d$$);
SELECT pg_temp.try($$MERGE INTO notes n USING (VALUES (3)) s(id) ON n.id = s.id WHEN MATCHED THEN UPDATE SET note = 'merged'$$);
SELECT pg_temp.try($$MERGE INTO notes n USING (VALUES (3)) s(id) ON n.id = s.id WHEN MATCHED THEN DELETE$$);
SELECT pg_temp.try($$INSERT INTO notes SELECT * FROM notes WHERE id = 4 ON CONFLICT (id) DO UPDATE SET note = 'overwritten'$$);
SELECT pg_temp.try($$UPDATE events SET id = 10 WHERE id = 1$$);
SELECT pg_temp.try($$DELETE FROM events WHERE id = 2$$);
SELECT pg_temp.try($$TRUNCATE notes$$);
SELECT pg_temp.try($$TRUNCATE events$$);
SELECT pg_temp.try($$TRUNCATE events_2$$);
SELECT pg_temp.try($$ALTER TABLE notes SET ACCESS METHOD heap$$);
SELECT pg_temp.try($$ALTER TABLE empty_notes SET ACCESS METHOD heap$$);
SELECT pg_temp.rows_of('notes') = notes AS notes_unchanged, pg_temp.rows_of('events_1') = events_1 AS events_1_unchanged,
       pg_temp.rows_of('events_2') = events_2 AS events_2_unchanged
  FROM before;
SELECT pg_temp.am_of('notes') AS notes, pg_temp.am_of('empty_notes') AS empty_notes;
-- A table holding no block has nothing to remove: its TRUNCATE goes through
-- (as pg_restore --jobs does to a table it has just created).
SELECT pg_relation_size('empty_notes') AS empty_notes_bytes;
SELECT pg_temp.try($$TRUNCATE empty_notes$$);
-- (put back as pg_worm made them: every trigger ENABLE ALWAYS)
DO $$
DECLARE t record;
BEGIN
  FOR t IN SELECT tgrelid::regclass AS rel, tgname FROM pg_trigger JOIN pg_class ON pg_class.oid = tgrelid
            WHERE NOT tgisinternal AND relnamespace = 'public'::regnamespace LOOP
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', t.rel, t.tgname);
  END LOOP;
END $$;
ALTER EVENT TRIGGER worm_guard_ddl ENABLE ALWAYS;
ALTER EVENT TRIGGER worm_guard_ddl_end ENABLE ALWAYS;
ALTER EVENT TRIGGER worm_guard_drop ENABLE ALWAYS;
SELECT tgrelid::regclass::text AS table_name, count(*) AS triggers, count(*) FILTER (WHERE tgenabled = 'A') AS always_enabled
  FROM pg_trigger JOIN pg_class ON pg_class.oid = tgrelid
 WHERE NOT tgisinternal AND relnamespace = 'public'::regnamespace GROUP BY 1 ORDER BY 1;
SELECT pg_temp.verified('notes') AS notes, pg_temp.verified('events') AS events,
       pg_temp.verified('empty_notes') AS empty_notes;

-- COPY (heap's multi-insert below) chains its rows as INSERT does.
COPY empty_notes (id, note) FROM stdin;
1	one
2	two
3	three
\.
SELECT pg_temp.verified('empty_notes') AS copied;

-- Maintenance that rewrites or rebuilds a table works, and leaves the rows,
-- their links and the access method as they were.
CREATE TEMP TABLE kept AS
  SELECT pg_temp.rows_of('notes') AS notes, pg_relation_filenode('notes') AS filenode;
VACUUM FULL notes;
SELECT pg_relation_filenode('notes') <> filenode AS rewritten, pg_temp.rows_of('notes') = notes AS rows_unchanged FROM kept;
CLUSTER notes USING notes_pkey;
SELECT pg_temp.rows_of('notes') = notes AS rows_unchanged_after_cluster FROM kept;
REINDEX TABLE notes;
VACUUM (ANALYZE, FREEZE) notes;
ANALYZE notes;
SELECT pg_temp.rows_of('notes') = notes AS rows_unchanged_after_reindex_vacuum FROM kept;
SELECT pg_temp.am_of('notes') AS am, pg_temp.verified('notes') AS verified;

-- worm.purge_expired still removes rows whose retention has ended (the one
-- DELETE worm_heap lets through), and the table verifies afterwards.
CREATE TABLE short_notes (id int, note text);
SELECT worm.protect('short_notes', chains => 1, retention => '2 seconds');
INSERT INTO short_notes SELECT g, 'old ' || g FROM generate_series(1, 4) g;
SELECT pg_sleep(2.5);
INSERT INTO short_notes SELECT g, 'new ' || g FROM generate_series(5, 6) g;
SELECT (worm.purge_expired('short_notes') ->> 'rows_removed')::int AS purged;
SELECT string_agg(note, ', ' ORDER BY id) AS left_rows FROM short_notes;
SELECT pg_temp.verified('short_notes') AS after_purge;
SELECT pg_temp.am_of('short_notes') AS am;
-- A DELETE outside the purge is still refused.
ALTER EVENT TRIGGER worm_guard_ddl DISABLE;
ALTER TABLE short_notes DISABLE TRIGGER ALL;
SELECT pg_temp.try($$DELETE FROM short_notes WHERE id = 5$$);
ALTER TABLE short_notes ENABLE ALWAYS TRIGGER zz_worm_chain, ENABLE ALWAYS TRIGGER worm_refuse_change,
                        ENABLE ALWAYS TRIGGER worm_refuse_row_change;
ALTER EVENT TRIGGER worm_guard_ddl ENABLE ALWAYS;
SELECT count(*) AS rows_left FROM short_notes;

-- An unprotected table may be put on worm_heap (no pg_worm registration, no
-- chain: only the storage layer's refusals), and cannot be taken off it
-- again; DROP TABLE still works, as for any unprotected table.
CREATE TABLE plain (id int);
INSERT INTO plain VALUES (1), (2);
ALTER TABLE plain SET ACCESS METHOD worm_heap;
SELECT pg_temp.am_of('plain') AS am,
       EXISTS (SELECT FROM worm.protected_tables WHERE table_name = 'plain'::regclass) AS registered;
SELECT pg_temp.try($$UPDATE plain SET id = 3$$);
SELECT pg_temp.try($$DELETE FROM plain$$);
SELECT pg_temp.try($$TRUNCATE plain$$);
SELECT pg_temp.try($$ALTER TABLE plain SET ACCESS METHOD heap$$);
SELECT id FROM plain ORDER BY id;
DROP TABLE plain;
-- A table created on worm_heap, empty, is protected as any other.
CREATE TABLE born_worm (id int) USING worm_heap;
SELECT worm.protect('born_worm', chains => 1);
INSERT INTO born_worm VALUES (1);
SELECT pg_temp.am_of('born_worm') AS am, pg_temp.verified('born_worm') AS verified;
-- One created on worm_heap and filled before it is protected: protect's own
-- UPDATE that chains the existing rows goes through (and only it).
CREATE TABLE born_full (id int, note text) USING worm_heap;
INSERT INTO born_full SELECT g, 'row ' || g FROM generate_series(1, 5) g;
SELECT pg_temp.try($$UPDATE born_full SET note = 'x'$$);
SELECT worm.protect('born_full', chains => 2);
SELECT pg_temp.am_of('born_full') AS am, pg_temp.verified('born_full') AS verified,
       (SELECT count(*) FROM born_full WHERE note LIKE 'row %') AS unchanged_rows;
SELECT pg_temp.try($$UPDATE born_full SET note = 'x'$$);

-- A protected table taken off worm_heap by a catalog edit (what a superuser
-- still can do; preloaded, pg_worm refuses DML on pg_catalog.pg_class):
-- worm.verify says so (NOTICE), with the statement that puts it back, which
-- the guards allow.
UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 'born_worm'::regclass;   -- 2 = heap
SET client_min_messages = notice;
SELECT pg_temp.verified('born_worm') AS verified;
RESET client_min_messages;
ALTER TABLE born_worm SET ACCESS METHOD worm_heap;
SELECT pg_temp.am_of('born_worm') AS am, pg_temp.verified('born_worm') AS verified;
SELECT pg_temp.try($$DELETE FROM born_worm$$);

\c :regress_db
DROP DATABASE pg_worm_storage;
