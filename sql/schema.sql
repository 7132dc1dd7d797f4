-- pg_worm: the extension's own tables. Hand-written; loaded first.

-- One row per protected table. table_uid is the table's stable identity: it is
-- bound into every chain link and survives renames, pg_dump/pg_restore and
-- physical replication (unlike the OID).
CREATE TABLE worm.tables (
    table_uid       uuid PRIMARY KEY,
    table_name      regclass NOT NULL UNIQUE,
    chains          integer NOT NULL CHECK (chains BETWEEN 1 AND 1024),
    retention       interval CHECK (retention > interval '0'),
    legal_basis     text,
    legal_hold      boolean NOT NULL DEFAULT false,
    protected_at    timestamptz NOT NULL,
    protected_by    text NOT NULL,
    rows_at_protect bigint NOT NULL
);
COMMENT ON TABLE worm.tables IS 'pg_worm: registry of protected tables (edit only through worm.* functions)';

-- pg_dump must carry the registry: the tables it describes are user data.
SELECT pg_catalog.pg_extension_config_dump('worm.tables', '');

REVOKE ALL ON worm.tables FROM PUBLIC;
GRANT SELECT ON worm.tables TO PUBLIC;
