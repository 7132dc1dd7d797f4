-- What a stored row says cannot change unseen: column renames, enum label
-- renames, type renames, inheritance children, row-level security and every
-- route to a default on ADD COLUMN are refused (42501); generated columns,
-- RLS and children are refused at protect (0A000). The column list is
-- recorded in the ledger at protect and at every allowed ADD COLUMN.
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
\set VERBOSITY terse
BEGIN;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TYPE finding AS ENUM ('benign', 'malignant');
CREATE DOMAIN bp_mmhg AS int DEFAULT 120;
CREATE TABLE pathology (id int, diagnosis text, ruled_out text, result finding, systolic int, diastolic int);
SELECT worm.protect('pathology', chains => 2);
INSERT INTO pathology VALUES (1, 'melanoma', 'nevus', 'malignant', 140, 90);

SELECT pg_temp.try($$ALTER TABLE pathology RENAME COLUMN diagnosis TO ruled_out_tmp$$) AS rename_column;
SELECT pg_temp.try($$ALTER TABLE pathology RENAME COLUMN systolic TO worm_systolic$$) AS rename_into_prefix;
SELECT pg_temp.try($$ALTER TYPE finding RENAME VALUE 'benign' TO 'malignant_'$$) AS rename_enum_value;
SELECT pg_temp.try($$ALTER TYPE finding RENAME TO finding_old$$) AS rename_type;
SELECT pg_temp.try($$ALTER TYPE finding ADD VALUE 'indeterminate'$$) AS add_enum_value;
SELECT pg_temp.try($$CREATE TABLE pathology_fake () INHERITS (pathology)$$) AS inherits;
SELECT pg_temp.try($$ALTER TABLE pathology ENABLE ROW LEVEL SECURITY$$) AS rls;
SELECT pg_temp.try($$CREATE POLICY hide ON pathology USING (id > 1)$$) AS policy;
SELECT pg_temp.try($$ALTER TABLE pathology ADD COLUMN seq serial$$) AS add_serial;
SELECT pg_temp.try($$ALTER TABLE pathology ADD COLUMN bp bp_mmhg$$) AS add_domain_default;
SELECT pg_temp.try($$ALTER TABLE pathology ADD COLUMN n int GENERATED ALWAYS AS IDENTITY$$) AS add_identity;
SELECT pg_temp.try($$ALTER TABLE pathology ADD COLUMN g int GENERATED ALWAYS AS (id * 2) STORED$$) AS add_generated;
SELECT pg_temp.try($$ALTER TABLE pathology ADD COLUMN at timestamptz DEFAULT now()$$) AS add_default;
SELECT pg_temp.try($$ALTER TABLE pathology ADD COLUMN fee money$$) AS add_unhashable;
SELECT pg_temp.try($$ALTER TABLE pathology ADD COLUMN note text$$) AS add_plain;
INSERT INTO pathology (id, diagnosis, ruled_out, result, systolic, diastolic, note)
    VALUES (2, 'nevus', 'melanoma', 'benign', 120, 80, 'follow-up');

-- A second unique index that is not ascending does not stand in for the chain index.
CREATE UNIQUE INDEX pathology_desc ON pathology (worm_chain, worm_seq DESC);
SELECT pg_temp.try($$DROP INDEX pathology_worm_chain_worm_seq_idx$$) AS drop_chain_index;

-- The ledger holds the column list at protect and after the ADD COLUMN.
SELECT event, jsonb_path_query_array(document -> 'columns', '$[*].name') AS columns
  FROM worm.ledger WHERE table_uid = (SELECT table_uid FROM worm.tables WHERE table_name = 'pathology'::regclass)
 ORDER BY seq;
SELECT count(*) FILTER (WHERE NOT ok) AS problems, sum(rows_checked) AS rows_checked FROM worm.verify('pathology');
SELECT table_name, encoding_version FROM worm.protected_tables WHERE table_name = 'pathology'::regclass;

-- What protect refuses.
CREATE TABLE derived (id int, twice int GENERATED ALWAYS AS (id * 2) STORED);
SELECT pg_temp.try($$SELECT worm.protect('derived')$$) AS protect_generated;
CREATE TABLE hidden (id int);
ALTER TABLE hidden ENABLE ROW LEVEL SECURITY;
SELECT pg_temp.try($$SELECT worm.protect('hidden')$$) AS protect_rls;
CREATE TABLE parent_table (id int);
CREATE TABLE child_table () INHERITS (parent_table);
SELECT pg_temp.try($$SELECT worm.protect('parent_table')$$) AS protect_with_child;
ROLLBACK;
