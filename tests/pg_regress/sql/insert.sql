-- Every insert path keeps working, and the worm_ values are always the
-- extension's own. One chain, so the output is deterministic.
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
BEGIN;
CREATE TABLE observations (id int, code text, value numeric);
SELECT worm.protect('observations', chains => 1);

INSERT INTO observations VALUES (1, 'HR', 72);
INSERT INTO observations VALUES (2, 'BP-SYS', 120), (3, 'BP-DIA', 80);
INSERT INTO observations SELECT 3 + g, 'SPO2', 95 + g FROM generate_series(1, 3) g;
COPY observations (id, code, value) FROM STDIN;
7	TEMP	36.6
8	TEMP	37.1
\.
PREPARE obs(int, text, numeric) AS INSERT INTO observations (id, code, value) VALUES ($1, $2, $3);
EXECUTE obs(9, 'RR', 16);
EXECUTE obs(10, 'RR', 18);
DEALLOCATE obs;

-- A savepoint rolled back, then more rows: no gap.
SAVEPOINT s1;
INSERT INTO observations VALUES (100, 'rolled back', 0);
ROLLBACK TO SAVEPOINT s1;
INSERT INTO observations VALUES (11, 'GLU', 5.4);

-- A failed statement inside a savepoint: no gap either.
SAVEPOINT s2;
INSERT INTO observations VALUES (12, 'ok', 1), (13, 'bad', 'not a number');
ROLLBACK TO SAVEPOINT s2;
INSERT INTO observations VALUES (12, 'K', 4.1);

-- Values an application supplies for the worm_ columns are never trusted:
-- replaced.
CREATE ROLE obs_app;
GRANT INSERT, SELECT ON observations TO obs_app;
SET ROLE obs_app;
INSERT INTO observations (id, code, value, worm_chain, worm_seq, worm_inserted_at, worm_hash)
VALUES (14, 'forged', 0, 9, 1000, '1999-01-01', '\xdeadbeef');
COPY observations (id, code, value, worm_chain, worm_seq, worm_inserted_at, worm_hash) FROM STDIN;
15	forged-copy	0	5	7	2000-01-01 00:00:00+00	\\x00
\.
RESET ROLE;
-- A superuser's (or worm_restore member's) are kept only when they extend
-- the chain exactly (a restore, a subscriber): these do not.
INSERT INTO observations (id, code, value, worm_chain, worm_seq, worm_inserted_at, worm_hash)
VALUES (16, 'forged', 0, 0, 1000, '1999-01-01', '\xdeadbeef');

SELECT id, code, value, worm_chain, worm_seq, length(worm_hash) AS hash_len,
       worm_inserted_at > '2020-01-01' AS recent
  FROM observations ORDER BY worm_seq;
-- Insertion times never go backwards along a chain.
SELECT bool_and(worm_inserted_at >= prev) AS monotonic
  FROM (SELECT worm_inserted_at, lag(worm_inserted_at) OVER (ORDER BY worm_seq) AS prev FROM observations) s
 WHERE prev IS NOT NULL;
SELECT chain, rows_checked, ok, first_bad_seq, detail, problems, head_seq FROM worm.verify('observations');
SELECT chain, head_seq FROM worm.chain_heads('observations') ORDER BY chain;
SELECT rows FROM worm.protected_tables WHERE table_name = 'observations'::regclass;
ROLLBACK;
