-- Partitioned tables: worm.protect(parent) protects every partition it has
-- and every partition it gets later; writes through the parent are refused;
-- verify, checkpoint and purge cover every partition; DETACH is recorded;
-- DROP TABLE retires; what cannot be protected is refused naming the partition.
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
\set VERBOSITY terse
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.hint(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE h text;
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT; RETURN h;
END $$;

CREATE TABLE audit (id bigint, at timestamptz NOT NULL, event text) PARTITION BY RANGE (at);
CREATE TABLE audit_2026_01 PARTITION OF audit FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE audit_2026_02 PARTITION OF audit FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
INSERT INTO audit VALUES (1, '2026-01-05', 'admit'), (2, '2026-02-05', 'discharge'), (3, '2026-01-07', 'transfer');

-- Bad input first: a DEFAULT partition, a foreign-table partition, a column
-- type pg_worm cannot hash. Each is named, and nothing is changed.
CREATE TABLE audit_default PARTITION OF audit DEFAULT;
SELECT pg_temp.try($$SELECT worm.protect('audit')$$);
DROP TABLE audit_default;
CREATE FOREIGN DATA WRAPPER worm_test_fdw;
CREATE SERVER worm_test_server FOREIGN DATA WRAPPER worm_test_fdw;
CREATE FOREIGN TABLE audit_remote PARTITION OF audit FOR VALUES FROM ('2025-01-01') TO ('2025-02-01') SERVER worm_test_server;
SELECT pg_temp.try($$SELECT worm.protect('audit')$$);
DROP FOREIGN TABLE audit_remote;
CREATE TABLE shapes (id int, at date NOT NULL, p point) PARTITION BY RANGE (at);
CREATE TABLE shapes_2026 PARTITION OF shapes FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SELECT pg_temp.try($$SELECT worm.protect('shapes')$$);
SELECT count(*) AS shapes_columns FROM pg_attribute WHERE attrelid = 'shapes_2026'::regclass AND attname LIKE 'worm%';
SELECT count(*) AS nothing_registered FROM worm.tables WHERE table_name::text LIKE 'shapes%' OR table_name::text LIKE 'audit%';

-- Protect the parent: existing rows are chained in each partition.
SELECT worm.protect('audit', retention => '5 seconds', chains => 2);
SELECT table_name, chains, rows, retention, parent FROM worm.protected_tables WHERE table_name::text LIKE 'audit%' ORDER BY table_name::text;
SELECT table_name, chains, retention, dropped_at IS NULL AS current FROM worm.partitioned_tables ORDER BY 1;
SELECT pg_temp.try($$SELECT worm.protect('audit')$$);
SELECT pg_temp.try($$SELECT worm.protect('audit_2026_01')$$);

-- Partitions created later are protected with the parent's settings:
-- PARTITION OF, ATTACH of an empty table (pg_partman), nested partitioning.
CREATE TABLE audit_2026_03 PARTITION OF audit FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
CREATE TABLE audit_2026_04 (LIKE audit INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE audit ATTACH PARTITION audit_2026_04 FOR VALUES FROM ('2026-04-01') TO ('2026-05-01');
CREATE TABLE audit_2026_05 PARTITION OF audit FOR VALUES FROM ('2026-05-01') TO ('2026-06-01') PARTITION BY LIST (event);
CREATE TABLE audit_2026_05_admit PARTITION OF audit_2026_05 FOR VALUES IN ('admit');
CREATE TABLE audit_2026_05_other PARTITION OF audit_2026_05 FOR VALUES IN ('discharge', 'transfer');
INSERT INTO audit VALUES (4, '2026-03-05', 'admit'), (5, '2026-04-05', 'admit'), (6, '2026-05-05', 'admit'), (7, '2026-05-06', 'transfer');
COPY audit (id, at, event) FROM STDIN;
8	2026-01-20	admit
9	2026-05-20	discharge
\.
SELECT table_name, chains, rows, parent FROM worm.protected_tables WHERE table_name::text LIKE 'audit%' ORDER BY table_name::text;
SELECT table_name FROM worm.partitioned_tables ORDER BY 1;
SELECT c.relname, count(t.tgname) AS pg_worm_triggers
  FROM pg_class c LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname IN ('zz_worm_chain', 'worm_refuse_change', 'worm_refuse_row_change')
 WHERE c.relname LIKE 'audit%' AND c.relkind IN ('r', 'p')
 GROUP BY c.relname ORDER BY c.relname;

-- Writes through the parent, or to a partition: refused.
SELECT pg_temp.try($$UPDATE audit SET event = 'changed' WHERE id = 1$$);
SELECT pg_temp.try($$DELETE FROM audit WHERE id = 1$$);
SELECT pg_temp.try($$TRUNCATE audit$$);
SELECT pg_temp.try($$DELETE FROM audit_2026_05_admit$$);
SELECT pg_temp.try($$INSERT INTO audit VALUES (10, '2026-01-02', 'x') ON CONFLICT DO NOTHING$$);
SELECT pg_temp.try($$ALTER TABLE audit DISABLE TRIGGER worm_refuse_change$$);
SELECT pg_temp.try($$DROP TRIGGER worm_refuse_change ON audit$$);
SELECT pg_temp.try($$ALTER TABLE audit RENAME COLUMN event TO what$$);
SELECT pg_temp.try($$ALTER TABLE audit DROP COLUMN event$$);

-- Later partitions that cannot be protected: refused, naming why.
SELECT pg_temp.try($$CREATE TABLE audit_default PARTITION OF audit DEFAULT$$);
SELECT pg_temp.try($$CREATE FOREIGN TABLE audit_remote PARTITION OF audit FOR VALUES FROM ('2025-01-01') TO ('2025-02-01') SERVER worm_test_server$$);
CREATE TABLE audit_2026_06 (LIKE audit);
INSERT INTO audit_2026_06 VALUES (20, '2026-06-01', 'forged', 0, 1, now(), '\x00');
SELECT pg_temp.try($$ALTER TABLE audit ATTACH PARTITION audit_2026_06 FOR VALUES FROM ('2026-06-01') TO ('2026-07-01')$$);
SELECT pg_temp.try($$CREATE TABLE audit_2026_07 PARTITION OF audit FOR VALUES FROM ('2026-07-01') TO ('2026-08-01') WITH (fillfactor = 100)$$);
SELECT pg_temp.try($$CREATE UNLOGGED TABLE audit_2026_08 PARTITION OF audit FOR VALUES FROM ('2026-08-01') TO ('2026-09-01')$$);
-- A table protected on its own attaches with its chains (and is recorded).
CREATE TABLE audit_2025_12 (id bigint, at timestamptz NOT NULL, event text);
INSERT INTO audit_2025_12 VALUES (30, '2025-12-24', 'admit');
SELECT worm.protect('audit_2025_12', retention => '5 seconds', chains => 1);
ALTER TABLE audit ATTACH PARTITION audit_2025_12 FOR VALUES FROM ('2025-12-01') TO ('2026-01-01');
-- Not one that keeps its rows for less time than the parent (a purge
-- through the parent would remove them early).
CREATE TABLE audit_2025_11 (id bigint, at timestamptz NOT NULL, event text);
SELECT worm.protect('audit_2025_11', retention => '1 second', chains => 1) IS NOT NULL AS protected;
SELECT pg_temp.try($$ALTER TABLE audit ATTACH PARTITION audit_2025_11 FOR VALUES FROM ('2025-11-01') TO ('2025-12-01')$$);
-- Each refusal says what to do instead.
SELECT pg_temp.hint($$ALTER TABLE audit ATTACH PARTITION audit_2025_11 FOR VALUES FROM ('2025-11-01') TO ('2025-12-01')$$) AS hint;
SELECT pg_temp.hint($$ALTER TABLE audit ATTACH PARTITION audit_2026_06 FOR VALUES FROM ('2026-06-01') TO ('2026-07-01')$$) AS hint;
SELECT pg_temp.hint($$CREATE TABLE audit_default PARTITION OF audit DEFAULT$$) AS hint;
-- A partition alone is protected through its partitioned table.
CREATE TABLE loose (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE loose_1 PARTITION OF loose FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
SELECT pg_temp.try($$SELECT worm.protect('loose_1')$$);
-- A protected table cannot join a parent pg_worm does not protect.
CREATE TABLE plain_parent (id bigint, at timestamptz NOT NULL, event text) PARTITION BY RANGE (at);
SELECT pg_temp.try($$ALTER TABLE plain_parent ATTACH PARTITION audit_2026_03 FOR VALUES FROM ('2026-03-01') TO ('2026-04-01')$$);

-- Tiered storage stays possible on partitions and through the parent:
-- compression, VACUUM FULL, CLUSTER (they rewrite storage, not rows).
ALTER TABLE audit ALTER COLUMN event SET COMPRESSION lz4;
ALTER TABLE audit_2026_01 ALTER COLUMN event SET COMPRESSION pglz;
VACUUM FULL audit_2026_01;
CLUSTER audit_2026_02 USING audit_2026_02_worm_chain_worm_seq_idx;
VACUUM (FULL, ANALYZE) audit;

-- Verification through the parent: every partition, named.
-- (Which chain a row joins depends on the session: counted per partition.)
SELECT table_name, count(chain) AS chains, sum(rows_checked) AS rows, bool_and(ok) AS ok,
       bool_and(detail LIKE 'ok: %') AS details_ok
  FROM worm.verify('audit') GROUP BY table_name ORDER BY table_name;
CREATE TEMP TABLE cp AS SELECT worm.checkpoint('audit') AS d;
SELECT d ->> 'partitioned_table' AS parent, jsonb_array_length(d -> 'checkpoints') AS checkpoints,
       (SELECT array_agg(c -> 'checkpoint' -> 'table' ->> 'name' ORDER BY 1) FROM jsonb_array_elements(d -> 'checkpoints') c) AS partitions
  FROM cp;
SELECT table_name, bool_and(ok) AS ok, sum(rows_checked) AS rows FROM worm.verify('audit', (SELECT d FROM cp)) GROUP BY table_name ORDER BY table_name;
SELECT pg_temp.try($$SELECT * FROM worm.verify('audit', (SELECT d -> 'checkpoints' -> 0 FROM cp))$$);

-- DETACH: recorded; the table stays protected.
ALTER TABLE audit DETACH PARTITION audit_2026_04;
SELECT table_name, parent FROM worm.protected_tables WHERE table_name = 'audit_2026_04'::regclass;
SELECT pg_temp.try($$DELETE FROM audit_2026_04$$);
SELECT event, document ->> 'table' IS NOT NULL AS names_table, document ->> 'parent' AS parent
  FROM worm.ledger WHERE event IN ('attach', 'detach', 'protect_partitioned') AND document -> 'table' ->> 'name' LIKE 'public.audit%' ORDER BY seq;

-- Legal holds and retention through the parent: one hold on every partition;
-- retention lengthened everywhere (and for partitions created later).
SELECT jsonb_array_length(h -> 'holds') AS holds_placed FROM worm.legal_hold('audit', 'matter 12') AS h;
SELECT count(*) AS held_partitions FROM worm.holds WHERE reason = 'matter 12';
SELECT pg_temp.try($$SELECT worm.purge_expired('audit')$$) ~ '^55000: table public\.audit_\d+_\d+.* is under legal hold' AS purge_refused_on_hold;
SELECT pg_temp.try($$SELECT worm.release_hold('audit', 1, 'done')$$);
SELECT jsonb_array_length(r -> 'released') AS released FROM worm.release_hold('audit', 'matter 12 closed') AS r;
SELECT count(*) AS holds_left FROM worm.holds WHERE table_name::text LIKE 'audit%';
SELECT pg_temp.try($$SELECT worm.set_retention('audit', '1 second')$$);
SELECT jsonb_array_length(r -> 'partitions') AS partitions, r ->> 'partitioned_table' AS parent
  FROM worm.set_retention('audit', '6 seconds') AS r;
SELECT table_name, retention FROM worm.partitioned_tables ORDER BY 1;
SELECT DISTINCT retention FROM worm.protected_tables WHERE parent IS NOT NULL;

-- Retention: DROP TABLE of a partition whose rows are all expired retires it
-- (pg_partman's retention does exactly this); before that it is refused.
SELECT pg_temp.try($$DROP TABLE audit_2026_03$$);
SELECT pg_temp.try($$DROP TABLE audit$$);
SELECT pg_sleep(6.5);
SELECT (p ->> 'rows_removed')::int AS purged, jsonb_array_length(p -> 'partitions') AS partitions
  FROM worm.purge_expired('audit') AS p;
SELECT (p ->> 'rows_removed')::int AS purged_again FROM worm.purge_expired('audit') AS p;
DROP TABLE audit_2026_03;
SELECT table_name, rows_removed FROM worm.certificates WHERE table_name = 'public.audit_2026_03' ORDER BY ledger_seq;
SELECT worm.verify_certificate(certificate) AS retire_certificate_verifies FROM worm.certificates
 WHERE table_name = 'public.audit_2026_03' AND certificate -> 'certificate' ->> 'event' = 'retire';
SELECT table_name, bool_and(ok) AS ok FROM worm.verify('audit', (SELECT d FROM cp)) GROUP BY table_name ORDER BY table_name;
-- DROP TABLE of the parent retires every partition left.
DROP TABLE audit;
SELECT to_regclass('audit') IS NULL AS parent_gone, to_regclass('audit_2026_05_admit') IS NULL AS nested_gone;
SELECT count(*) AS partitions_left FROM worm.protected_tables WHERE parent IS NOT NULL;
SELECT count(*) AS registered_parents FROM worm.partitioned_tables WHERE table_name IS NOT NULL;
SELECT count(*) AS retire_certificates FROM worm.certificates WHERE certificate -> 'certificate' ->> 'event' = 'retire' AND table_name LIKE 'public.audit%';
-- worm.retire of a partitioned table: the same, as a function.
CREATE TABLE notes (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE notes_2026 PARTITION OF notes FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SELECT worm.protect('notes', retention => '3 seconds', chains => 1);
INSERT INTO notes VALUES (1, '2026-03-03');
SELECT pg_temp.try($$SELECT worm.retire('notes')$$);
SELECT pg_sleep(3.5);
SELECT r ->> 'rows_removed' AS rows_removed, r ->> 'table_dropped' AS dropped,
       jsonb_array_length(r -> 'partitions') AS partitions
  FROM worm.retire('notes') AS r;
SELECT to_regclass('notes') IS NULL AS notes_gone;
SELECT ok FROM worm.verify_ledger();

-- A parent that already has pg_worm's columns (0.1.0's manual recipe): its
-- empty partitions are protected in place; one holding rows pg_worm never
-- chained, or a parent with only some of the columns, is refused.
CREATE TABLE manual (id int, at date NOT NULL, worm_chain int NOT NULL, worm_seq bigint NOT NULL,
                     worm_inserted_at timestamptz NOT NULL, worm_hash bytea NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE manual_1 PARTITION OF manual FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
SELECT worm.protect('manual', chains => 2);
INSERT INTO manual (id, at) VALUES (1, '2026-01-05');
SELECT table_name, bool_and(ok) AS ok, sum(rows_checked) AS rows FROM worm.verify('manual') GROUP BY 1;
CREATE TABLE half (id int, at date NOT NULL, worm_chain int, worm_seq bigint) PARTITION BY RANGE (at);
SELECT pg_temp.try($$SELECT worm.protect('half')$$);
CREATE TABLE forged (id int, at date NOT NULL, worm_chain int NOT NULL, worm_seq bigint NOT NULL,
                     worm_inserted_at timestamptz NOT NULL, worm_hash bytea NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE forged_1 PARTITION OF forged FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
INSERT INTO forged VALUES (1, '2026-01-05', 0, 1, now(), '\x00');
SELECT pg_temp.try($$SELECT worm.protect('forged')$$);
