#!/usr/bin/env bash
# The Merkle root of a deletion certificate (purge and retire), which pg_worm folds as the
# chains stream by, recomputed here from the rows' links read before they were removed:
# RFC 9162 over the links ordered by chain then seq (leaf 0x00 || link, node 0x01 || l || r),
# computed in Python. Also retire's final heads: each chain's last row, else its anchor, else
# the genesis. Chains of different lengths (one empty), more than 256 rows in one chain.
source "$(dirname "$0")/../lib.sh"
start_test_cluster 55581
work_dir pg_worm_certroots

psql_q <<'SQL' >/dev/null
CREATE EXTENSION pg_worm;
CREATE TABLE notes (id int, note text);
SELECT worm.protect('notes', retention => '2 seconds', chains => 4);
CREATE TABLE gone (id int, note text);
SELECT worm.protect('gone', retention => '2 seconds', chains => 3);
CREATE TABLE certs (n int PRIMARY KEY, c jsonb);
SQL
# Rows land on chains by session: several sessions, uneven sizes (600 rows in one session).
for n in 600 7 40 1; do
  psql_q -c "INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, $n) g" >/dev/null
done
for n in 300 2; do
  psql_q -c "INSERT INTO gone SELECT g, 'g' || g FROM generate_series(1, $n) g" >/dev/null
done
LINKS="SELECT string_agg(encode(worm_hash, 'hex'), ' ' ORDER BY worm_chain, worm_seq) FROM"
psql_q -c "$LINKS notes" >"$WORK/notes.links"
psql_q -c "$LINKS gone" >"$WORK/gone.links"
psql_q -c "SELECT string_agg(c || ':' || coalesce(s::text, '0') || ':' || coalesce(l, ''), ' ' ORDER BY c)
  FROM generate_series(0, 2) c
  LEFT JOIN LATERAL (SELECT worm_seq AS s, encode(worm_hash, 'hex') AS l FROM gone
                      WHERE worm_chain = c ORDER BY worm_seq DESC LIMIT 1) x ON true" >"$WORK/gone.heads"
sleep 2.5

root() { # FILE: the RFC 9162 root over the hex links in FILE
  python3 - "$1" <<'PY'
import hashlib, sys
links = [bytes.fromhex(h) for h in open(sys.argv[1]).read().split()]
def mth(xs):
    if not xs: return hashlib.sha256(b"").digest()
    if len(xs) == 1: return hashlib.sha256(b"\x00" + xs[0]).digest()
    k = 1
    while k * 2 < len(xs): k *= 2
    return hashlib.sha256(b"\x01" + mth(xs[:k]) + mth(xs[k:])).digest()
print(mth(links).hex())
PY
}

psql_q -c "INSERT INTO certs SELECT 1, worm.purge_expired('notes')" >/dev/null
eq "purge: rows removed" "$(psql_q -c "SELECT c -> 'certificate' -> 'removed' ->> 'rows' FROM certs WHERE n = 1")" 648
eq "purge: the certificate's Merkle root is the root over the removed links" \
  "$(psql_q -c "SELECT c -> 'certificate' -> 'removed' ->> 'merkle_root' FROM certs WHERE n = 1")" "$(root "$WORK/notes.links")"
eq "purge: the certificate verifies" "$(psql_q -c "SELECT worm.verify_certificate(c) FROM certs WHERE n = 1")" t

psql_q -c "INSERT INTO certs SELECT 2, worm.retire('gone')" >/dev/null
eq "retire: the certificate's Merkle root is the root over the table's links" \
  "$(psql_q -c "SELECT c -> 'certificate' -> 'removed' ->> 'merkle_root' FROM certs WHERE n = 2")" "$(root "$WORK/gone.links")"
GENESIS="$(printf '0%.0s' $(seq 64))"  # docs/hashing.md: the genesis link is 32 zero bytes
HEADS="$(psql_q -c "SELECT string_agg((h ->> 'chain') || ':' || (h ->> 'seq') || ':' || coalesce(h ->> 'link', ''), ' ' ORDER BY (h ->> 'chain')::int)
  FROM certs, jsonb_array_elements(c -> 'certificate' -> 'final_heads') h WHERE n = 2")"
WANT="$(sed "s/:0:\$/:0:$GENESIS/; s/:0: /:0:$GENESIS /g" "$WORK/gone.heads")"
eq "retire: final heads are each chain's last row (genesis for an empty chain)" "$HEADS" "$WANT"
eq "retire: the certificate verifies" "$(psql_q -c "SELECT worm.verify_certificate(c) FROM certs WHERE n = 2")" t
echo "certificate roots: purge of 648 rows over 4 chains and retire of 302 rows over 3 chains (one empty) give the RFC 9162 roots recomputed independently; final heads as read before the retirement"
