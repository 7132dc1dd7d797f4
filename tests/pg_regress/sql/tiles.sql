-- worm.prove from the stored tree state of the latest checkpoint: the root of
-- every 256 leaves of each chain's tree (worm.merkle_tiles). The proof is the one a full read gives;
-- tiles that do not give the checkpoint's root are never trusted (the whole
-- table is read instead).
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
\set VERBOSITY terse
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TABLE rounds (id int, note text);
SELECT worm.protect('rounds', chains => 1);
INSERT INTO rounds SELECT g, 'round ' || g FROM generate_series(1, 600) g;
SELECT worm.checkpoint('rounds') IS NOT NULL AS checkpointed;
SELECT count(*) AS tiles, count(DISTINCT ledger_seq) AS checkpoints
  FROM worm.merkle_tiles WHERE table_uid = (SELECT table_uid FROM worm.tables WHERE table_name = 'rounds'::regclass);
CREATE TEMP TABLE p AS SELECT worm.prove('rounds', 0, 300) AS proof;
SELECT (proof ->> 'leaf_index')::int AS leaf_index, (proof -> 'checkpoint' ->> 'merkle_size')::int AS size,
       jsonb_array_length(proof -> 'path') AS path_length
  FROM p;
-- A tile root altered by a superuser who switched the guards off: the proof
-- is the same, computed from the table itself.
ALTER EVENT TRIGGER worm_guard_ddl DISABLE;
ALTER TABLE worm.merkle_tiles DISABLE TRIGGER worm_guard;
UPDATE worm.merkle_tiles SET root = decode(repeat('00', 32), 'hex') WHERE tile = 1
   AND table_uid = (SELECT table_uid FROM worm.tables WHERE table_name = 'rounds'::regclass);
ALTER TABLE worm.merkle_tiles ENABLE ALWAYS TRIGGER worm_guard;
ALTER EVENT TRIGGER worm_guard_ddl ENABLE;
SELECT worm.prove('rounds', 0, 300) = (SELECT proof FROM p) AS same_proof_without_trusting_the_tiles;
SELECT worm.prove('rounds', 0, 10) ->> 'leaf_index' AS other_tile_leaf;
-- Rows added after the checkpoint are not in it; a new checkpoint covers them.
INSERT INTO rounds VALUES (601, 'late');
SELECT regexp_replace(pg_temp.try($$SELECT worm.prove('rounds', 0, 601)$$), 'ledger entry \d+', 'ledger entry N') AS not_yet;
-- The next checkpoint detects the altered tile too (a NOTICE): it reads that
-- chain in full and writes its tiles again.
SELECT worm.checkpoint('rounds') IS NOT NULL AS checkpointed_again;
SELECT worm.prove('rounds', 0, 601) ->> 'leaf_index' AS late_leaf;
SELECT count(*) AS tiles_now FROM worm.merkle_tiles t JOIN worm.tables w USING (table_uid)
 WHERE w.table_name = 'rounds'::regclass AND t.ledger_seq = (SELECT max(seq) FROM worm.ledger WHERE event = 'checkpoint');
