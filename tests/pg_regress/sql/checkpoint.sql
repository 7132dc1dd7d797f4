-- Checkpoints, verification against a digest kept outside, trusted keys and
-- inclusion proofs. One transaction, rolled back.
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
BEGIN;
CREATE TABLE referrals (id int, note text);
SELECT worm.protect('referrals', chains => 1);
INSERT INTO referrals SELECT g, 'referral ' || g FROM generate_series(1, 10) g;
CREATE TEMP TABLE digest AS SELECT worm.checkpoint('referrals') AS d;
SELECT d -> 'checkpoint' ->> 'type' AS type, d -> 'checkpoint' ->> 'rows' AS rows,
       d -> 'checkpoint' -> 'merkle' ->> 'size' AS merkle_size,
       length(d -> 'checkpoint' -> 'merkle' ->> 'root') AS root_hex_len,
       d -> 'checkpoint' -> 'chains' -> 0 ->> 'head_seq' AS head_seq,
       d -> 'checkpoint' -> 'previous_checkpoint' AS previous,
       d -> 'checkpoint' -> 'verification' ->> 'ok' AS verified
  FROM digest;
SELECT last_checkpoint IS NOT NULL AS has_checkpoint FROM worm.protected_tables WHERE table_name = 'referrals'::regclass;

-- The table extends its digest, also after more inserts.
INSERT INTO referrals VALUES (11, 'later');
SELECT chain, ok, first_bad_seq, detail ~ 'extends the checkpoint of ledger entry' AS extends FROM worm.verify('referrals', (SELECT d FROM digest));

-- A second checkpoint links to the first.
SELECT (worm.checkpoint('referrals') -> 'checkpoint' -> 'previous_checkpoint' ->> 'hash')
     = (SELECT d -> 'ledger_entry' ->> 'hash' FROM digest) AS links_previous;

-- An inclusion proof of row 3.
CREATE TEMP TABLE proof AS SELECT worm.prove('referrals', 0, 3) AS p;
SELECT p ->> 'type' AS type, p -> 'row' ->> 'seq' AS seq, p ->> 'leaf_index' AS leaf_index,
       jsonb_array_length(p -> 'path') AS path_hashes, p -> 'checkpoint' ->> 'merkle_size' AS size
  FROM proof;

-- Altered digests and digests of another table are refused.
SELECT * FROM worm.verify('referrals', (SELECT jsonb_set(d, '{checkpoint,rows}', '99') FROM digest));
CREATE TABLE other (id int);
SELECT worm.protect('other', chains => 1);
SELECT * FROM worm.verify('other', (SELECT d FROM digest));

-- A removed tail: invisible to verify alone, shown against the digest.
-- worm_heap refuses UPDATE/DELETE below the triggers; an insider edits the
-- catalog (pg_class.relam) to get past it: detected by verify, not prevented.
ALTER EVENT TRIGGER worm_guard_ddl DISABLE;
UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 'referrals'::regclass;   -- 2 = heap: worm_heap's refusals off
ALTER TABLE referrals DISABLE TRIGGER ALL;
DELETE FROM referrals WHERE worm_seq > 7;
UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = 'referrals'::regclass;
SELECT chain, ok, detail FROM worm.verify('referrals');
-- (Merkle roots depend on insertion times: shown as H.)
SELECT chain, ok, first_bad_seq, regexp_replace(detail, '[0-9a-f]{16}…', 'H…', 'g') AS detail
  FROM worm.verify('referrals', (SELECT d FROM digest));

-- Proofs need a checkpoint that covers the row.
SELECT worm.prove('other', 0, 1);
INSERT INTO other VALUES (1);
SELECT worm.checkpoint('other') -> 'checkpoint' ->> 'rows' AS rows;
INSERT INTO other VALUES (2);
-- (The ledger entry's number depends on the tests before: shown as N.)
DO $$ BEGIN PERFORM worm.prove('other', 0, 2);
EXCEPTION WHEN OTHERS THEN RAISE NOTICE '% %', SQLSTATE, regexp_replace(SQLERRM, 'ledger entry \d+', 'ledger entry N');
END $$;

-- Trusted keys: only digests signed by one of them count.
SELECT worm.trust_key('jane-2026', 'not hex');
SELECT worm.trust_key('jane-2026', 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a') -> 'document' ->> 'key_id' AS trusted;
SELECT * FROM worm.verify('referrals', (SELECT d FROM digest));
SELECT key_id, length(public_key) AS key_bytes FROM worm.trusted_keys;
UPDATE worm.trusted_keys SET key_id = 'mallory';
ROLLBACK;
