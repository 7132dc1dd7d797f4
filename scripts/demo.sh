#!/usr/bin/env bash
# pg_worm demo: an auditor's walk-through on a throwaway PostgreSQL 15 cluster.
#
# Builds and installs pg_worm (release), starts a cluster as the postgres user
# in a temporary directory on its own port, protects a PHI-like table, inserts
# as an application would, shows UPDATE/DELETE/TRUNCATE refused, then plays an
# insider with access to the data files: stops the server, changes one byte of
# one stored row, restarts, and shows worm.verify naming the damaged chain and
# row. The cluster is stopped at the end, also on failure.
source "$(dirname "$0")/lib.sh"
PORT="${PG_WORM_DEMO_PORT:-55440}"

ensure_toolchain
install_extension release
log "building worm-verify, the independent verifier"
(cd "$ROOT" && cargo build --release --quiet -p worm-verify)
WV="${CARGO_TARGET_DIR:-$ROOT/target}/release/worm-verify"
start_cluster "$PORT"
DIGEST_DIR="$(mktemp -d /tmp/pg_worm_demo_digest.XXXXXX)"
trap 'cleanup_cluster; rm -rf "$DIGEST_DIR"' EXIT
DB_URL="host=$PGHOST port=$PGPORT user=postgres dbname=postgres"

sql() { "$PG_BIN/psql" -X -e -v ON_ERROR_STOP=1 "$@"; }
say() { printf '\n\033[1;34m# %s\033[0m\n' "$*"; }

say "A DBA installs the extension and protects a table of clinical notes."
sql <<'SQL'
CREATE EXTENSION pg_worm;
CREATE TABLE clinical_notes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id  uuid NOT NULL,
    author      text NOT NULL,
    note        text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    vitals      jsonb
);
SELECT worm.protect('clinical_notes', retention => '6 years', chains => 4);
SQL

say "The application inserts as it always did: INSERT, multi-row INSERT, COPY."
sql <<'SQL'
INSERT INTO clinical_notes (patient_id, author, note, vitals)
VALUES ('6f1c8a56-2a7e-4f51-9d0e-3b2f0c9e1a01', 'dr.osei', 'Admitted with chest pain, ECG ordered.', '{"hr": 96, "bp": "142/91"}');
INSERT INTO clinical_notes (patient_id, author, note, vitals) VALUES
  ('6f1c8a56-2a7e-4f51-9d0e-3b2f0c9e1a01', 'rn.lindqvist', 'Bed 12: patient reports pain 7/10, morphine 2 mg IV given.', '{"hr": 88}'),
  ('0b8e4d7a-51c3-4c8e-a0f4-7d9b2e6c3f12', 'dr.osei', 'Discharge summary signed.', NULL);
COPY clinical_notes (patient_id, author, note) FROM STDIN;
0b8e4d7a-51c3-4c8e-a0f4-7d9b2e6c3f12	pharm.ito	Medication reconciliation complete.
\.
SELECT id, author, left(note, 40) AS note, worm_chain, worm_seq, left(encode(worm_hash, 'hex'), 16) AS link
  FROM clinical_notes ORDER BY id;
SQL

say "Nobody can change or remove a note, not even the table's owner:"
for stmt in \
  "UPDATE clinical_notes SET note = 'pain 2/10' WHERE id = 2;" \
  "DELETE FROM clinical_notes WHERE id = 3;" \
  "TRUNCATE clinical_notes;"; do
  "$PG_BIN/psql" -X -e -c "$stmt" 2>&1 || true
done

say "The auditor verifies every chain:"
sql -c "SELECT chain, rows_checked, ok, first_bad_seq, detail FROM worm.verify('clinical_notes') ORDER BY chain;"

say "... and independently of the server's code, with worm-verify, which reads the rows over a"
say "read-only connection and recomputes every hash itself. It also takes a checkpoint, signed"
say "with the auditor's own key, to keep outside the database:"
echo "\$ worm-verify table --db '...' clinical_notes"
"$WV" table --db "$DB_URL" clinical_notes
echo "\$ worm-verify keygen --out auditor.key && worm-verify checkpoint ... && worm-verify sign ..."
"$WV" keygen --out "$DIGEST_DIR/auditor.key" --key-id demo-auditor >/dev/null
"$WV" checkpoint --db "$DB_URL" clinical_notes -o "$DIGEST_DIR/digest.json"
"$WV" sign --key "$DIGEST_DIR/auditor.key" --key-id demo-auditor "$DIGEST_DIR/digest.json" -o "$DIGEST_DIR/signed.json"

say "An insider with access to the data files edits a stored row on disk."
read -r FILE CHAIN SEQ < <(psql_q -F ' ' -c "SELECT pg_relation_filepath('clinical_notes'), worm_chain, worm_seq FROM clinical_notes WHERE note LIKE 'Bed 12:%'")
echo "row 'Bed 12: ... pain 7/10' is chain $CHAIN, seq $SEQ, stored in \$PGDATA/$FILE"
psql_q -c "CHECKPOINT"
stop_cluster
python3 - "$PGDATA_DIR/$FILE" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, 'rb').read())
needle = b'pain 7/10'
at = data.find(needle)
assert at >= 0 and data.find(needle, at + 1) < 0, "marker must occur exactly once"
data[at + 5] = ord('2')          # "pain 7/10" becomes "pain 2/10"
open(path, 'wb').write(data)
print(f"changed one byte at offset {at + 5} of {path}: 'pain 7/10' -> 'pain 2/10'")
PY
runuser -u postgres -- env RUST_BACKTRACE=0 "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$CLUSTER_DIR/server.log" -w start >/dev/null

say "The row now reads differently, and nothing in SQL shows it was edited:"
sql -c "SELECT id, note, worm_chain, worm_seq FROM clinical_notes WHERE id = 2;"

say "But worm.verify names the damaged chain and row:"
sql -c "SELECT chain, rows_checked, ok, first_bad_seq, detail FROM worm.verify('clinical_notes') ORDER BY chain;"

say "worm-verify, outside the server, agrees (exit code 1 = problem found), also against the signed digest:"
echo "\$ worm-verify table --db '...' clinical_notes --against signed.json"
set +e
"$WV" table --db "$DB_URL" clinical_notes --against "$DIGEST_DIR/signed.json"
WV_RC=$?
set -e
if [ "$WV_RC" != 1 ]; then
  echo "demo FAILED: worm-verify should have exited 1, exited $WV_RC" >&2
  exit 1
fi

BAD="$(psql_q -c "SELECT chain || ':' || first_bad_seq FROM worm.verify('clinical_notes') WHERE NOT ok" 2>/dev/null)"
if [ "$BAD" != "$CHAIN:$SEQ" ]; then
  echo "demo FAILED: expected chain $CHAIN seq $SEQ to be reported, got '$BAD'" >&2
  exit 1
fi
say "Detected: chain $CHAIN, row $SEQ. The demo cluster is stopped and removed."
