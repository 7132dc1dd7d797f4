-- With no protected table in a database, pg_worm changes nothing of
-- PostgreSQL's behaviour (issue 11); with one, its refusals concern only
-- what protects it. A database of its own, so that no other file's
-- protected tables are in it. (Preloaded, the same is checked by
-- PostgreSQL's own regression suite: tests/scenarios/97_pg_regress_suite.sh.)
SELECT current_database() AS regress_db \gset
CREATE DATABASE pg_worm_nopt;
\c pg_worm_nopt
SET client_min_messages = warning;
CREATE EXTENSION pg_worm;
-- CREATE SCHEMA with elements: the elements are created in a schema that
-- does not exist yet when the statement starts.
CREATE SCHEMA nopt
  CREATE TABLE t (id int PRIMARY KEY, note text)
  CREATE SEQUENCE s
  CREATE VIEW v AS SELECT id FROM t
  CREATE INDEX t_note ON t (note)
  GRANT SELECT ON t TO PUBLIC;
SELECT c.relname, c.relkind FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
 WHERE n.nspname = 'nopt' ORDER BY 1;
-- PostgreSQL's own error for an element naming another schema.
CREATE SCHEMA nopt2 CREATE TABLE public.elsewhere (id int);
-- ALTER FUNCTION of a function outside schema worm, with worm first on the
-- search_path.
CREATE FUNCTION public.plain_f() RETURNS int LANGUAGE sql AS 'SELECT 1';
SET search_path = worm, public;
ALTER FUNCTION plain_f() IMMUTABLE;
ALTER FUNCTION plain_f() RENAME TO plain_g;
ALTER FUNCTION plain_g() SET work_mem = '8MB';
SELECT proname, provolatile, proconfig FROM pg_proc WHERE proname IN ('plain_f', 'plain_g');
RESET search_path;
-- The database carries no marker until a table is protected.
SELECT count(*) AS marked FROM pg_db_role_setting
 WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND 'worm.protected_database=on' = ANY (setconfig);
-- Once a table is protected: the refusals concern it only.
CREATE TABLE nopt.audit (id int, who text);
SELECT worm.protect('nopt.audit', chains => 1) IS NOT NULL AS protected;
SELECT count(*) AS marked FROM pg_db_role_setting
 WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND 'worm.protected_database=on' = ANY (setconfig);
\set VERBOSITY terse
CREATE SCHEMA nopt3 CREATE TABLE child (extra int) INHERITS (nopt.audit);
\set VERBOSITY default
CREATE SCHEMA nopt4 CREATE TABLE child (extra int) INHERITS (nopt.t);
ALTER TABLE nopt.t RENAME COLUMN note TO remark;
ALTER INDEX nopt.t_note RENAME TO t_remark;
-- Without shared_preload_libraries no hook sees DROP DATABASE: it is not
-- refused (the documented limit of that mode; preloaded: scenario 99).
\c :regress_db
DROP DATABASE pg_worm_nopt;
