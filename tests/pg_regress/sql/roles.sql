-- Roles: application roles insert and read; worm_auditor verifies and reads
-- the ledger and certificates and changes nothing; worm_admin manages tables
-- it does not own. One transaction, rolled back.
\set ON_ERROR_ROLLBACK on
\set SHOW_CONTEXT never
BEGIN;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE sql; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN ('worm_auditor', 'worm_admin') ORDER BY 1;

CREATE ROLE clinic_owner;
CREATE ROLE clinic_app;
CREATE ROLE jane_auditor IN ROLE worm_auditor;
CREATE ROLE ops_admin IN ROLE worm_admin;
GRANT CREATE ON SCHEMA public TO clinic_owner;
SET ROLE clinic_owner;
CREATE TABLE lab_results (id int, test text, value numeric);
GRANT SELECT, INSERT ON lab_results TO clinic_app;
RESET ROLE;

-- worm_admin protects a table it does not own (the DDL runs as the owner).
SET ROLE ops_admin;
SELECT worm.protect('lab_results', retention => '10 years', chains => 2);
RESET ROLE;
SELECT tableowner FROM pg_tables WHERE tablename = 'lab_results';
SELECT has_table_privilege('worm_auditor', 'lab_results', 'SELECT') AS auditor_can_read;

-- The application inserts; it can neither change rows nor manage the table.
SET ROLE clinic_app;
INSERT INTO lab_results VALUES (1, 'HbA1c', 6.1), (2, 'LDL', 3.2);
SELECT pg_temp.try($$UPDATE lab_results SET value = 5.0$$) AS app_update;
SELECT pg_temp.try($$SELECT worm.purge_expired('lab_results')$$) AS app_purge;
SELECT pg_temp.try($$SELECT worm.legal_hold('lab_results', 'mine')$$) AS app_hold;
RESET ROLE;

-- The auditor verifies and reads the ledger; changes nothing.
SET ROLE jane_auditor;
SELECT count(*) AS chains, sum(rows_checked) AS rows, bool_and(ok) AS all_ok FROM worm.verify('lab_results');
SELECT count(*) AS chains_ok FROM worm.verify_all() WHERE ok AND table_name::regclass = 'lab_results'::regclass;
SELECT ok FROM worm.verify_ledger();
SELECT event FROM worm.ledger ORDER BY seq DESC LIMIT 1;
SELECT count(*) >= 0 AS reads_certificates FROM worm.certificates;
SELECT pg_temp.try($$INSERT INTO lab_results VALUES (3, 'x', 0)$$) AS auditor_insert;
SELECT pg_temp.try($$SELECT worm.set_retention('lab_results', '20 years')$$) AS auditor_retention;
SELECT pg_temp.try($$DELETE FROM worm.ledger$$) AS auditor_ledger_delete;
SELECT pg_temp.try($$INSERT INTO worm.ledger VALUES (99, 'forged', NULL, now(), '{}', '\x00', '\x00')$$) AS auditor_ledger_insert;
RESET ROLE;

-- worm_admin manages retention and holds of tables it does not own.
SET ROLE ops_admin;
SELECT worm.set_retention('lab_results', '12 years') -> 'document' -> 'retention' ->> 'to' AS lengthened_to;
SELECT worm.legal_hold('lab_results', 'audit 2026-Q4') -> 'document' ->> 'reason' AS hold;
SELECT worm.release_hold('lab_results', 'audit closed') -> 'document' ->> 'reason' AS released;
RESET ROLE;
ROLLBACK;
