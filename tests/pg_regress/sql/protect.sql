-- worm.protect: what it adds, what it refuses.
-- Runs in one transaction that is rolled back: nothing is left behind.
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
BEGIN;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- An empty table.
CREATE TABLE visits (id bigint PRIMARY KEY, patient_id int NOT NULL, note text);
SELECT worm.protect('visits', retention => '6 years');

-- The columns pg_worm added, with their types.
SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull
  FROM pg_attribute WHERE attrelid = 'visits'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;

-- Its triggers, all ENABLE ALWAYS (tgenabled = 'A').
SELECT tgname, tgenabled, tgtype FROM pg_trigger
 WHERE tgrelid = 'visits'::regclass ORDER BY tgname;

-- The unique (worm_chain, worm_seq) index.
SELECT indexdef FROM pg_indexes WHERE tablename = 'visits' AND indexdef LIKE '%worm_chain%';

-- The registry and the view.
SELECT table_name, chains, rows, retention, legal_basis, legal_hold, protected_by = session_user AS by_me,
       last_verified, last_checkpoint
  FROM worm.protected_tables ORDER BY table_name::text;

-- A table that already holds rows: they are chained in a deterministic order
-- (ascending row hash), round robin over the chains.
CREATE TABLE legacy (id int, note text);
INSERT INTO legacy SELECT g, 'legacy note ' || g FROM generate_series(1, 7) g;
SELECT worm.protect('legacy', chains => 3);
SELECT id, worm_chain, worm_seq, worm_inserted_at = transaction_timestamp() AS at_protect,
       length(worm_hash) AS hash_len
  FROM legacy ORDER BY worm_chain, worm_seq;
SELECT chain, rows_checked, ok, first_bad_seq, detail FROM worm.verify('legacy') ORDER BY chain;

-- Refusals.
SELECT worm.protect('visits');                                   -- twice
SELECT pg_temp.try($$SELECT worm.protect('visits')$$);
CREATE VIEW visits_v AS SELECT id FROM visits;
SELECT worm.protect('visits_v');                                 -- a view
CREATE MATERIALIZED VIEW visits_m AS SELECT 1 AS x;
SELECT pg_temp.try($$SELECT worm.protect('visits_m')$$);
CREATE EXTENSION file_fdw;
CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE imported (id int) SERVER files OPTIONS (filename '/dev/null');
SELECT pg_temp.try($$SELECT worm.protect('imported')$$);
CREATE SEQUENCE s1;
SELECT pg_temp.try($$SELECT worm.protect('s1')$$);
CREATE TABLE parted (id int) PARTITION BY RANGE (id);
SELECT pg_temp.try($$SELECT worm.protect('parted')$$);
CREATE TEMP TABLE scratch (id int);
SELECT pg_temp.try($$SELECT worm.protect('scratch')$$) ~ '^55000: table pg_temp_[0-9]+\.scratch is temporary' AS refused_temporary;
CREATE UNLOGGED TABLE fast (id int);
SELECT worm.protect('fast');                                     -- unlogged
SELECT pg_temp.try($$SELECT worm.protect('fast')$$);
CREATE TABLE shapes (id int, p point);
SELECT worm.protect('shapes');                                   -- unsupported type
SELECT pg_temp.try($$SELECT worm.protect('shapes')$$);
CREATE TABLE clash (id int, worm_note text);
SELECT worm.protect('clash');                                    -- reserved prefix
SELECT pg_temp.try($$SELECT worm.protect('clash')$$);
CREATE TABLE chainy (id int);
SELECT worm.protect('chainy', chains => 0);                      -- bad chain count
SELECT pg_temp.try($$SELECT worm.protect('chainy', chains => 5000)$$);
SELECT worm.protect('chainy', retention => '-1 day');            -- bad retention
SELECT pg_temp.try($$SELECT worm.protect('chainy', retention => '0 days')$$);
SELECT pg_temp.try($$SELECT worm.protect('no_such_table')$$);

-- A BEFORE INSERT trigger that would fire after pg_worm's and could change
-- rows after they are hashed.
CREATE TABLE late (id int, note text);
CREATE FUNCTION pg_temp.shout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.note := upper(NEW.note); RETURN NEW; END $$;
CREATE TRIGGER zzz_shout BEFORE INSERT ON late FOR EACH ROW EXECUTE FUNCTION pg_temp.shout();
SELECT worm.protect('late');
-- One that fires before pg_worm's is fine: the row is hashed as stored.
CREATE TABLE early (id int, note text);
CREATE TRIGGER aaa_shout BEFORE INSERT ON early FOR EACH ROW EXECUTE FUNCTION pg_temp.shout();
SELECT worm.protect('early', chains => 1);
INSERT INTO early VALUES (1, 'quiet');
SELECT id, note, worm_seq FROM early;
SELECT chain, rows_checked, ok, detail FROM worm.verify('early');

-- Rewrite rules.
CREATE TABLE ruled (id int);
CREATE RULE ruled_r AS ON UPDATE TO ruled DO INSTEAD NOTHING;
SELECT pg_temp.try($$SELECT worm.protect('ruled')$$);

-- Only the owner protects.
CREATE ROLE worm_regress_app;
CREATE TABLE owned (id int);
GRANT USAGE ON SCHEMA worm TO worm_regress_app;
GRANT SELECT, INSERT ON owned TO worm_regress_app;
SET ROLE worm_regress_app;
SELECT worm.protect('owned');
SELECT pg_temp.try($$SELECT worm.protect('owned')$$);
RESET ROLE;
ROLLBACK;
