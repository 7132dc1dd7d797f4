-- The do-it-yourself baseline: a hash-chained, append-only notes table built
-- with PL/pgSQL the way public projects and blog posts do it.
--
--   * one chain for the whole table, its head in a one-row table;
--   * a BEFORE INSERT row trigger that serializes writers with a
--     transaction-level advisory lock (held until COMMIT), reads the previous
--     hash, hashes it together with the new row's JSON text, stores the result
--     in the row and moves the head forward with an UPDATE.
--
-- It exists only as the benchmark's comparison point (bench/run.sh); it is
-- not part of pg_worm and protects nothing (no UPDATE/DELETE refusal, a
-- TimeZone-dependent row encoding, no verification function).

CREATE TABLE diy_notes (
    id          bigserial,
    patient_id  uuid,
    author      text,
    note        text,
    recorded_at timestamptz,
    vitals      jsonb,
    hash        bytea
);

CREATE TABLE diy_chain_head (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    prev_hash bytea NOT NULL
);
INSERT INTO diy_chain_head (prev_hash) VALUES (decode(repeat('00', 32), 'hex'));

CREATE FUNCTION diy_chain_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prev bytea;
BEGIN
    -- One writer at a time, until the end of its transaction.
    PERFORM pg_advisory_xact_lock(727274);
    -- A new statement, so under READ COMMITTED it sees the head the previous
    -- lock holder committed.
    SELECT prev_hash INTO prev FROM diy_chain_head WHERE only_row;
    NEW.hash := NULL;
    NEW.hash := sha256(convert_to(encode(prev, 'hex') || row_to_json(NEW)::text, 'UTF8'));
    UPDATE diy_chain_head SET prev_hash = NEW.hash WHERE only_row;
    RETURN NEW;
END;
$$;

CREATE TRIGGER diy_chain BEFORE INSERT ON diy_notes
    FOR EACH ROW EXECUTE FUNCTION diy_chain_insert();
