-- worm.adopt: protect a table whose rows already carry worm_ values under a
-- known identity (a restore of the table alone, a logical-replication
-- subscriber); rows that arrive with their worm_ values. One transaction,
-- rolled back.
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
\set VERBOSITY terse
BEGIN;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT rolname FROM pg_roles WHERE rolname = 'worm_restore';

-- The source: a protected table with rows on two chains.
CREATE TABLE src (id int, note text);
SELECT worm.protect('src', chains => 2);
INSERT INTO src SELECT g, 'note ' || g FROM generate_series(1, 6) g;

-- A copy of it (what pg_restore -t leaves): same columns, same values.
CREATE TABLE copy (LIKE src);
INSERT INTO copy SELECT * FROM src;
SELECT count(*) AS rows, count(DISTINCT worm_hash) AS links FROM copy;

-- Under the source's identity, in the same database: refused (one table per identity).
SELECT pg_temp.try(format('SELECT worm.adopt(%L, %L, 2)', 'copy', (SELECT table_uid FROM worm.tables WHERE table_name = 'src'::regclass)))
       LIKE '42710: public.copy cannot be adopted as pg_worm table %: another table is registered under that identity' AS same_identity_refused;
-- Under another identity its links do not verify: refused, nothing kept.
SELECT pg_temp.try($$SELECT worm.adopt('copy', '00000000-0000-4000-8000-000000000001', 2)$$);
SELECT count(*) AS registered FROM worm.tables WHERE table_name = 'copy'::regclass;
SELECT count(*) AS chain_triggers FROM pg_trigger WHERE tgrelid = 'copy'::regclass AND NOT tgisinternal;
-- Argument checks are protect's.
SELECT pg_temp.try($$SELECT worm.adopt('copy', '00000000-0000-4000-8000-000000000001', 0)$$);
SELECT pg_temp.try($$SELECT worm.adopt('src', '00000000-0000-4000-8000-000000000001', 2)$$);
-- Anchors given for chains that start after a purge must be the source's rows.
SELECT pg_temp.try($$SELECT worm.adopt('copy', '00000000-0000-4000-8000-000000000001', 2, anchors => '{"chain": 0}')$$);
SELECT pg_temp.try($$SELECT worm.adopt('copy', '00000000-0000-4000-8000-000000000001', 2, anchors => '[{"chain": 2, "seq": 1}]')$$);
SELECT pg_temp.try($$SELECT worm.adopt('copy', '00000000-0000-4000-8000-000000000001', 2, anchors => '[{"chain": 0, "seq": 3, "link": "\\x00"}]')$$);
SELECT pg_temp.try($$SELECT worm.adopt('copy', '00000000-0000-4000-8000-000000000001', 2, anchors => '[{"table_uid": "00000000-0000-4000-8000-000000000009", "chain": 0}]')$$);
CREATE TABLE no_worm (id int);
SELECT pg_temp.try($$SELECT worm.adopt('no_worm', '00000000-0000-4000-8000-000000000001', 2)$$) LIKE '%worm_%' AS needs_worm_columns;

-- An empty copy (a subscriber before its first row) adopted under a new identity.
CREATE TABLE replica (LIKE src);
SELECT worm.adopt('replica', '00000000-0000-4000-8000-000000000002', 2, retention => '6 years');
SELECT table_uid, chains, retention, rows FROM worm.protected_tables WHERE table_name = 'replica'::regclass;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'replica'::regclass AND NOT tgisinternal ORDER BY 1;
SELECT event, document -> 'chains' AS chains FROM worm.ledger WHERE table_uid = '00000000-0000-4000-8000-000000000002' ORDER BY seq;

-- A superuser's row that carries worm_ values which do not extend the chain: refused.
SELECT pg_temp.try($$INSERT INTO replica (id, note, worm_chain, worm_seq, worm_inserted_at, worm_hash)
                     VALUES (1, 'x', 0, 5, now(), '\x00')$$);
SELECT pg_temp.try($$INSERT INTO replica (id, note, worm_chain, worm_seq, worm_inserted_at, worm_hash)
                     VALUES (1, 'x', 7, 1, now(), '\x00')$$);
SELECT pg_temp.try($$INSERT INTO replica (id, note, worm_chain, worm_seq, worm_inserted_at, worm_hash)
                     VALUES (1, 'x', 0, 1, now(), '\x00')$$);
-- Without worm_ values the row is chained as usual.
INSERT INTO replica (id, note) VALUES (1, 'plain insert');
-- Another role's worm_ values are replaced, not checked.
CREATE ROLE adopt_app;
GRANT INSERT, SELECT ON replica TO adopt_app;
SET ROLE adopt_app;
INSERT INTO replica (id, note, worm_chain, worm_seq, worm_inserted_at, worm_hash) VALUES (2, 'app', 1, 99, now(), '\x00');
RESET ROLE;
SELECT id, worm_seq <> 99 AS replaced FROM replica ORDER BY id;
SELECT count(*) AS chains, sum(rows_checked) AS rows_checked, bool_and(ok) AS ok FROM worm.verify('replica');
ROLLBACK;
