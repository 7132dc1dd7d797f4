-- pg_worm: views over the registry. Hand-written; loaded last.

CREATE FUNCTION worm.chain_heads(tbl regclass)
RETURNS TABLE (chain int, head_seq bigint, head_link text)
LANGUAGE sql STABLE STRICT
AS $$ SELECT * FROM worm._chain_heads(tbl::oid) $$;
COMMENT ON FUNCTION worm.chain_heads(regclass) IS 'pg_worm: the last row (sequence number and link) of every chain of a protected table';

CREATE VIEW worm.protected_tables AS
SELECT t.table_name,
       t.table_uid,
       t.chains,
       (SELECT coalesce(sum(h.head_seq), 0)::bigint
          FROM worm._chain_heads(t.table_name::oid) AS h) AS rows,
       t.retention,
       t.legal_basis,
       t.legal_hold,
       t.protected_at,
       t.protected_by,
       NULL::timestamptz AS last_verified,
       NULL::timestamptz AS last_checkpoint
  FROM worm.tables AS t;
COMMENT ON VIEW worm.protected_tables IS 'pg_worm: one row per protected table';
GRANT SELECT ON worm.protected_tables TO PUBLIC;
