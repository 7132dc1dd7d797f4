//! The subcommands: reading files and the database, running the checks, printing reports,
//! choosing the exit status (0 verified, 1 problem found, 2 could not verify).

use crate::db::{self, Failure, TableSel};
use crate::report;
use crate::sig;
use anyhow::{anyhow, Context, Result};
use pg_worm_core::findings::all_ok;
use pg_worm_core::{
    self as core, format_uuid, problems, short, signature_checks, Certificate, ChainRow, Check,
    Comparison, Digest, Malformed, Proof, SigResult, Status,
};
use pg_worm_core::{canonical_json, link, verify_ledger, LedgerEntry};
use serde_json::{json, Value as Json};
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn print_out(s: &str) {
    // A closed pipe (`| head`) is not worth a panic.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

fn print_err(s: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(s.as_bytes());
    let _ = err.flush();
}

fn fatal(e: &anyhow::Error) -> ExitCode {
    eprintln!("worm-verify: error: {e:#}");
    ExitCode::from(2)
}

fn exit(problems: usize) -> ExitCode {
    if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Reads a file ("-" = stdin) as text.
fn read_text(path: &Path) -> Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn parse_json(path: &Path, text: &str) -> Result<Json> {
    serde_json::from_str(text).with_context(|| format!("{} is not JSON", path.display()))
}

fn malformed(path: &Path, m: Malformed) -> anyhow::Error {
    anyhow!("{}: {m}", path.display())
}

fn load_digest(path: &Path) -> Result<Digest> {
    let text = read_text(path)?;
    Digest::parse(parse_json(path, &text)?).map_err(|m| malformed(path, m))
}

/// Writes pretty JSON to `out` (atomically: a temporary file in the same directory, then a
/// rename) or to stdout.
fn write_json(out: Option<&Path>, v: &Json) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v).context("cannot serialise JSON")?;
    text.push('\n');
    match out {
        None => {
            print_out(&text);
            Ok(())
        }
        Some(path) if path.as_os_str() == "-" => {
            print_out(&text);
            Ok(())
        }
        Some(path) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "out".into());
            let tmp = dir.join(format!(".{name}.worm-verify.{}", std::process::id()));
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, path)
            };
            write().map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                anyhow!("cannot write {}: {e}", path.display())
            })
        }
    }
}

// --- table ----------------------------------------------------------------------------------

pub fn table(db_url: &str, table: &str, json: bool) -> ExitCode {
    let mut client = match db::connect(db_url) {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    let show_progress = !json && std::io::stderr().is_terminal();
    match db::verify_table(&mut client, table, show_progress) {
        Ok(data) => {
            if json {
                print_out(&format!("{}\n", report::to_json(&data.rows)));
            } else {
                print_out(&report::to_text(&data.summary, &data.rows));
            }
            exit(usize::from(!all_ok(&data.rows)))
        }
        Err(Failure::Damaged(msg)) => {
            eprintln!("worm-verify: PROBLEM: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Fatal(e)) => fatal(&e),
    }
}

/// Adds a checkpoint problem to a chain's report row, as worm.verify words its own.
fn merge_problem(row: &mut ChainRow, seq: Option<i64>, text: &str) {
    if row.ok {
        row.detail = text.to_owned();
    } else {
        row.detail = format!("{}; {text}", row.detail);
    }
    row.ok = false;
    row.problems = row.problems.saturating_add(1);
    row.first_bad_seq = match (row.first_bad_seq, seq) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}

fn parse_required(keys: &[String]) -> Result<Vec<[u8; 32]>> {
    keys.iter()
        .map(|k| {
            sig::parse_public_key(k)
                .map(|v| v.to_bytes())
                .map_err(|e| anyhow!("--require-signature: {e}"))
        })
        .collect()
}

/// The checkpoint's ledger entry as this database's ledger has it.
fn ledger_check(stored: Option<&LedgerEntry>, last_seq: Option<i64>, d: &Digest) -> Check {
    let seq = d.entry.seq;
    match stored {
        Some(e)
            if e.hash == d.entry.hash
                && e.prev == d.entry.prev
                && canonical_json(&e.document) != canonical_json(d.document()) =>
        {
            Check::problem(
                "ledger",
                if d.hash_ok() {
                    format!("entry {seq} of this database's ledger has the checkpoint's hash, but its document differs from this digest's, which recomputes: the ledger's copy was altered")
                } else {
                    format!("entry {seq} of this database's ledger has the checkpoint's hash, but its document differs from this digest's: this copy of the digest was altered (the ledger holds the original)")
                },
            )
        }
        Some(e) if e.hash == d.entry.hash && e.prev == d.entry.prev => Check::ok(
            "ledger",
            format!("the checkpoint is still entry {seq} of this database's ledger (same hash and prev_hash)"),
        ),
        Some(e) => Check::problem(
            "ledger",
            format!(
                "entry {seq} of this database's ledger is another entry (hash {}…, the checkpoint's is {}…): the ledger was rewritten or replaced since the checkpoint",
                hex::encode(e.hash.get(..8).unwrap_or(&e.hash)),
                short(&d.entry.hash)
            ),
        ),
        None => match last_seq {
            Some(last) => Check::problem(
                "ledger",
                format!(
                    "this database's ledger ends at entry {last}, before the checkpoint's entry {seq}: the ledger was rolled back or an older backup restored"
                ),
            ),
            None => Check::problem(
                "ledger",
                "this database has no worm.ledger: the checkpoint cannot be in it".to_owned(),
            ),
        },
    }
}

fn digest_hash_check(d: &Digest) -> Check {
    if d.hash_ok() {
        Check::ok(
            "digest_hash",
            format!(
                "the digest's ledger hash {}… recomputes from its content",
                short(&d.entry.hash)
            ),
        )
    } else {
        Check::problem(
            "digest_hash",
            "the digest's ledger hash does not recompute from its content: the digest was altered",
        )
    }
}

struct AgainstOutcome {
    checks: Vec<Check>,
    comparison: Comparison,
}

/// Everything about the table and the digest, with the chain problems merged into `rows`.
fn against_checks(
    d: &Digest,
    data: &mut db::TableData,
    stored: Option<&LedgerEntry>,
    last_seq: Option<i64>,
    sigs: Option<(&[SigResult], &[[u8; 32]])>,
) -> AgainstOutcome {
    let comparison = core::compare(d, &data.uid, data.chains, &data.state);
    let mut checks = vec![digest_hash_check(d), ledger_check(stored, last_seq, d)];
    checks.extend(comparison.all_checks());
    if let Some((results, required)) = sigs {
        checks.extend(signature_checks(results, required));
    }
    for f in &comparison.chains {
        if f.check.status == Status::Problem {
            if let Some(row) = data.rows.iter_mut().find(|r| r.chain == Some(f.chain)) {
                merge_problem(row, f.first_bad_seq, &f.check.detail);
            }
        }
    }
    AgainstOutcome { checks, comparison }
}

pub fn table_against(
    db_url: &str,
    table: &str,
    json: bool,
    digest_path: &Path,
    required: &[String],
) -> ExitCode {
    let d = match load_digest(digest_path) {
        Ok(d) => d,
        Err(e) => return fatal(&e),
    };
    let required = match parse_required(required) {
        Ok(r) => r,
        Err(e) => return fatal(&e),
    };
    let mut client = match db::connect(db_url) {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    let show_progress = !json && std::io::stderr().is_terminal();
    let read = (|| -> Result<_, Failure> {
        let mut tx = db::begin_read(&mut client)?;
        let data = db::verify_table_in(&mut tx, TableSel::Name(table), show_progress, true)?;
        let stored = db::ledger_entry(&mut tx, d.entry.seq)?;
        let last = if stored.is_none() {
            db::ledger_last_seq(&mut tx)?
        } else {
            None
        };
        tx.commit()
            .map_err(db::pg)
            .context("cannot end the read-only transaction")?;
        Ok((data, stored, last))
    })();
    let (mut data, stored, last) = match read {
        Ok(x) => x,
        Err(Failure::Damaged(msg)) => {
            eprintln!("worm-verify: PROBLEM: {msg}");
            return ExitCode::from(1);
        }
        Err(Failure::Fatal(e)) => return fatal(&e),
    };
    let sig_results = d.check_signatures(&required);
    let outcome = against_checks(
        &d,
        &mut data,
        stored.as_ref(),
        last,
        Some((&sig_results, &required)),
    );
    let cp_problems = problems(&outcome.checks);
    let chain_problems = data.rows.iter().filter(|r| !r.ok).count();
    let ok = cp_problems == 0 && chain_problems == 0;
    if json {
        let v = json!({
            "chains": data.rows,
            "checkpoint": {
                "ledger_seq": d.entry.seq,
                "hash": hex::encode(d.entry.hash),
                "table": d.table_name,
                "at": d.at,
                "ok": cp_problems == 0,
                "problems": cp_problems,
                "checks": outcome.checks,
                "signatures": sig_results,
            },
            "ok": ok,
        });
        print_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        ));
    } else {
        let mut text = report::to_text(&data.summary, &data.rows);
        text.push_str(&format!("\nAgainst the {}\n", d.describe()));
        text.push_str(&report::checks_text(&outcome.checks));
        text.push('\n');
        let signer = sig_results
            .iter()
            .filter(|s| s.valid && (required.is_empty() || s.required_key))
            .map(|s| s.key_id.clone())
            .collect::<Vec<_>>();
        if cp_problems == 0 {
            let purged = if outcome.comparison.exact() {
                ""
            } else {
                " (purged since where noted)"
            };
            text.push_str(&format!(
                "OK: the table still extends the checkpoint of ledger entry {}{purged}{}.\n",
                d.entry.seq,
                if signer.is_empty() {
                    String::new()
                } else {
                    format!(", signed by {}", signer.join(", "))
                }
            ));
        } else {
            let names: Vec<String> = outcome
                .checks
                .iter()
                .filter(|c| c.status == Status::Problem)
                .map(|c| c.check.clone())
                .collect();
            text.push_str(&format!(
                "PROBLEMS FOUND against the checkpoint of ledger entry {}: {} ({}).\n",
                d.entry.seq,
                plural(cp_problems, "problem", "problems"),
                names.join(", ")
            ));
        }
        print_out(&text);
    }
    exit(usize::from(!ok))
}

// --- checkpoint -------------------------------------------------------------------------------

pub fn checkpoint(db_url: &str, table: &str, out: Option<&Path>) -> ExitCode {
    let mut client = match db::connect(db_url) {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    let whole = match db::take_checkpoint(&mut client, table) {
        Ok(j) => j,
        Err(e) => {
            // The server refuses to checkpoint a table that fails its own verification.
            let refused_damaged = e.chain().any(|c| {
                c.downcast_ref::<postgres::Error>()
                    .and_then(|p| p.code())
                    .is_some_and(|s| *s == postgres::error::SqlState::DATA_CORRUPTED)
            }) || format!("{e:#}").contains("XX001");
            eprintln!("worm-verify: error: {e:#}");
            return ExitCode::from(if refused_damaged { 1 } else { 2 });
        }
    };
    let d = match Digest::parse(whole) {
        Ok(d) => d,
        Err(m) => {
            return fatal(&anyhow!(
                "worm.checkpoint returned an unexpected document: {m}"
            ))
        }
    };
    let to_stdout = out.is_none_or(|p| p.as_os_str() == "-");
    let say = |s: &str| {
        if to_stdout {
            print_err(s)
        } else {
            print_out(s)
        }
    };
    say(&format!(
        "worm-verify: worm.checkpoint recorded ledger entry {} for {}; recomputing it independently\n",
        d.entry.seq, d.table_name
    ));
    let show_progress = std::io::stderr().is_terminal();
    let read = (|| -> Result<_, Failure> {
        let mut tx = db::begin_read(&mut client)?;
        let data = db::verify_table_in(&mut tx, TableSel::Name(table), show_progress, true)?;
        let stored = db::ledger_entry(&mut tx, d.entry.seq)?;
        tx.commit()
            .map_err(db::pg)
            .context("cannot end the read-only transaction")?;
        Ok((data, stored))
    })();
    let (mut data, stored) = match read {
        Ok(x) => x,
        Err(Failure::Damaged(msg)) => {
            eprintln!("worm-verify: PROBLEM: {msg}");
            return ExitCode::from(1);
        }
        Err(Failure::Fatal(e)) => return fatal(&e),
    };
    let outcome = against_checks(&d, &mut data, stored.as_ref(), None, None);
    let mut checks = outcome.checks;
    let bad_chains: Vec<&ChainRow> = data.rows.iter().filter(|r| !r.ok).collect();
    if bad_chains.is_empty() {
        checks.push(Check::ok(
            "table",
            format!(
                "every row hash and link of {} verified independently ({})",
                plural(data.rows.len(), "chain", "chains"),
                plural(data.summary.rows_read as usize, "row", "rows")
            ),
        ));
    } else {
        for r in &bad_chains {
            checks.push(Check::problem(
                "table",
                format!(
                    "chain {}: {}",
                    r.chain.map_or("NULL".to_owned(), |c| c.to_string()),
                    r.detail
                ),
            ));
        }
    }
    if d.verification_ok == Some(false) {
        checks.push(Check::problem(
            "verification",
            "the server's digest says its own verification failed",
        ));
    }
    if let Some(rows) = d.rows {
        if rows != d.merkle_size {
            checks.push(Check::problem(
                "rows",
                format!(
                    "the digest counts {rows} rows but its Merkle tree has {} leaves",
                    d.merkle_size
                ),
            ));
        }
    }
    // Anything not exactly equal (also a purge in between) means the digest cannot be vouched for.
    let differs = checks.iter().any(|c| c.status != Status::Ok);
    let mut text = format!("  {}\n", d.describe());
    text.push_str(&report::checks_text(&checks));
    if differs {
        text.push_str(&format!(
            "REFUSED: the server's digest (ledger entry {}) does not match what worm-verify recomputed from the rows; it is not written. (It is recorded in the ledger all the same.)\n",
            d.entry.seq
        ));
        say(&text);
        return ExitCode::from(1);
    }
    if let Err(e) = write_json(out, &d.whole) {
        say(&text);
        return fatal(&e);
    }
    text.push_str(&format!(
        "OK: the digest matches the rows (heads of {}, Merkle root {}… over {}){}; sign it with `worm-verify sign` and keep it outside the database.\n",
        plural(d.chains.len(), "chain", "chains"),
        short(&d.merkle_root),
        plural(d.merkle_size as usize, "row", "rows"),
        match out {
            Some(p) if p.as_os_str() != "-" => format!(", written to {}", p.display()),
            _ => String::new(),
        }
    ));
    say(&text);
    ExitCode::SUCCESS
}

// --- keygen and sign -------------------------------------------------------------------------

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn keygen(out: &Path, key_id: Option<&str>) -> ExitCode {
    let key_id = match key_id {
        Some(k) => k.to_owned(),
        None => out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if key_id.trim().is_empty() {
        return fatal(&anyhow!("--key-id must not be empty"));
    }
    let key = match sig::generate() {
        Ok(k) => k,
        Err(e) => return fatal(&e),
    };
    if let Err(e) = sig::write_key_file(out, &key) {
        return fatal(&e);
    }
    let pk = hex::encode(key.verifying_key().to_bytes());
    print_out(&format!(
        "secret key written to {} (mode 0600): keep it offline; whoever holds it can sign digests as {key_id}\n\
         public key: {pk}\n\
         register it in the server (a superuser or worm_admin), so that worm.verify(table, digest) counts only digests it signed:\n\
         \x20 SELECT worm.trust_key({}, {});\n",
        out.display(),
        sql_literal(&key_id),
        sql_literal(&pk)
    ));
    ExitCode::SUCCESS
}

pub fn sign(key_path: &Path, key_id: &str, digest_path: &Path, out: Option<&Path>) -> ExitCode {
    if key_id.trim().is_empty() {
        return fatal(&anyhow!("--key-id must not be empty"));
    }
    let (key, warning) = match sig::read_key_file(key_path) {
        Ok(k) => k,
        Err(e) => return fatal(&e),
    };
    if let Some(w) = warning {
        eprintln!("worm-verify: warning: {w}");
    }
    let d = match load_digest(digest_path) {
        Ok(d) => d,
        Err(e) => return fatal(&e),
    };
    if !d.hash_ok() {
        eprintln!(
            "worm-verify: PROBLEM: refusing to sign {}: its ledger hash does not recompute from its content, so the digest was altered after worm.checkpoint issued it",
            digest_path.display()
        );
        return ExitCode::from(1);
    }
    let results = d.check_signatures(&[]);
    if let Some(bad) = results.iter().find(|r| !r.valid) {
        eprintln!(
            "worm-verify: PROBLEM: refusing to countersign {}: its signature by {} does not verify",
            digest_path.display(),
            bad.key_id
        );
        return ExitCode::from(1);
    }
    let pk = key.verifying_key().to_bytes();
    let pk_hex = hex::encode(pk);
    let signed = if results.iter().any(|r| r.public_key == pk_hex) {
        eprintln!(
            "worm-verify: {} is already signed by this key; nothing added",
            digest_path.display()
        );
        d.whole.clone()
    } else {
        let signature = sig::sign(&key, &d.entry.hash);
        d.with_signature(key_id, &pk, &signature)
    };
    if let Err(e) = write_json(out, &signed) {
        return fatal(&e);
    }
    let n = signed
        .get("signatures")
        .and_then(Json::as_array)
        .map_or(0, Vec::len);
    eprintln!(
        "worm-verify: signed the checkpoint of {} in ledger entry {} (hash {}…) as {key_id}, public key {pk_hex}; it carries {}{}",
        d.table_name,
        d.entry.seq,
        short(&d.entry.hash),
        plural(n, "signature", "signatures"),
        match out {
            Some(p) if p.as_os_str() != "-" => format!(", written to {}", p.display()),
            _ => String::new(),
        }
    );
    ExitCode::SUCCESS
}

// --- proof ------------------------------------------------------------------------------------

pub fn proof(
    proof_path: &Path,
    checkpoint: Option<&Path>,
    db_url: Option<&str>,
    json: bool,
    verbose: bool,
) -> ExitCode {
    let text = match read_text(proof_path) {
        Ok(t) => t,
        Err(e) => return fatal(&e),
    };
    let t0 = Instant::now();
    let j = match parse_json(proof_path, &text) {
        Ok(j) => j,
        Err(e) => return fatal(&e),
    };
    let p = match Proof::parse(&j) {
        Ok(p) => p,
        Err(m) => return fatal(&malformed(proof_path, m)),
    };
    let t1 = Instant::now();
    let outcome = p.check();
    let check_time = t1.elapsed();
    let total_time = t0.elapsed();
    // The first check pays for cold caches; the mean of repeated checks is the steady cost.
    let mean_check = if verbose || json {
        const RUNS: u32 = 1000;
        let t = Instant::now();
        for _ in 0..RUNS {
            std::hint::black_box(std::hint::black_box(&p).check());
        }
        Some(t.elapsed() / RUNS)
    } else {
        None
    };

    let mut checks = Vec::new();
    if outcome.link_ok {
        checks.push(Check::ok(
            "link",
            format!(
                "the row's link {}… recomputes from its row hash, table, chain {}, seq {}, insertion time and previous link",
                short(&p.link),
                p.chain,
                p.seq
            ),
        ));
    } else {
        checks.push(Check::problem(
            "link",
            "the row's link does not recompute from its row hash, position, insertion time and previous link: the proof was altered",
        ));
    }
    if outcome.included {
        checks.push(Check::ok(
            "merkle_path",
            format!(
                "the link is leaf {} of the {}-leaf Merkle tree with root {}… ({})",
                p.leaf_index,
                p.merkle_size,
                short(&p.merkle_root),
                plural(p.path.len(), "hash", "hashes")
            ),
        ));
    } else {
        checks.push(Check::problem(
            "merkle_path",
            format!(
                "the audit path does not lead from the link (leaf {} of {}) to the root {}…: the proof was altered or belongs to another checkpoint",
                p.leaf_index,
                p.merkle_size,
                short(&p.merkle_root)
            ),
        ));
    }
    match checkpoint {
        Some(path) => match load_digest(path) {
            Ok(d) => checks.extend(p.against_digest(&d)),
            Err(e) => return fatal(&e),
        },
        None => checks.push(Check::note(
            "checkpoint",
            format!(
                "the root was not compared with a digest you keep (use --checkpoint DIGEST.json): the proof only shows inclusion in the checkpoint of ledger entry {} it names",
                p.checkpoint_seq
            ),
        )),
    }
    if let Some(url) = db_url {
        match proof_db_checks(url, &p) {
            Ok(more) => checks.extend(more),
            Err(Failure::Damaged(msg)) => checks.push(Check::problem("row", msg)),
            Err(Failure::Fatal(e)) => return fatal(&e),
        }
    }
    let problems = problems(&checks);
    let json_bytes = text.trim_end().len();
    if json {
        let v = json!({
            "ok": problems == 0,
            "table": {"uid": format_uuid(&p.table_uid), "name": p.table_name},
            "row": {"chain": p.chain, "seq": p.seq},
            "checkpoint_ledger_seq": p.checkpoint_seq,
            "checks": checks,
            "proof_bytes": p.binary_size(),
            "proof_json_bytes": json_bytes,
            "path_hashes": p.path.len(),
            "check_micros": check_time.as_secs_f64() * 1e6,
            "mean_check_micros": mean_check.map(|d| d.as_secs_f64() * 1e6),
            "parse_and_check_micros": total_time.as_secs_f64() * 1e6,
        });
        print_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        ));
    } else {
        let mut out = format!(
            "worm-verify: inclusion proof of row (chain {}, seq {}) of {} (table_uid {}) in the checkpoint of ledger entry {}\n",
            p.chain,
            p.seq,
            if p.table_name.is_empty() { "?" } else { &p.table_name },
            format_uuid(&p.table_uid),
            p.checkpoint_seq
        );
        out.push_str(&report::checks_text(&checks));
        out.push_str(&format!(
            "proof size: {} bytes in binary ({} fixed + {} × 32), {json_bytes} bytes as JSON\n",
            p.binary_size(),
            core::PROOF_FIXED_BYTES,
            p.path.len()
        ));
        if verbose {
            out.push_str(&format!(
                "checked in {:.1} µs (link and {}-hash path; {:.1} µs with JSON parsing; {:.1} µs on average over 1000 repeated checks)\n",
                check_time.as_secs_f64() * 1e6,
                p.path.len(),
                total_time.as_secs_f64() * 1e6,
                mean_check.unwrap_or_default().as_secs_f64() * 1e6
            ));
        }
        out.push_str(&if problems == 0 {
            format!(
                "OK: row (chain {}, seq {}) was in the table at the checkpoint of ledger entry {}.\n",
                p.chain, p.seq, p.checkpoint_seq
            )
        } else {
            format!(
                "PROBLEMS FOUND: {} in the proof of row (chain {}, seq {}).\n",
                plural(problems, "problem", "problems"),
                p.chain,
                p.seq
            )
        });
        print_out(&out);
    }
    exit(problems)
}

/// Re-reads the proved row and its checkpoint's ledger entry (read-only, no pg_worm function).
fn proof_db_checks(url: &str, p: &Proof) -> Result<Vec<Check>, Failure> {
    let mut client = db::connect(url)?;
    let mut tx = db::begin_read(&mut client)?;
    let o = db::open_table(&mut tx, TableSel::Uid(p.table_uid))?;
    let rows = db::fetch_row(&mut tx, &o, p.chain, p.seq)?;
    let anchor = db::anchor_of(&o, p.chain);
    let stored = db::ledger_entry(&mut tx, p.checkpoint_seq)?;
    tx.commit()
        .map_err(db::pg)
        .context("cannot end the read-only transaction")?;
    let mut checks = Vec::new();
    match stored {
        Some(e) if e.hash == p.checkpoint_hash => checks.push(Check::ok(
            "ledger",
            format!(
                "the checkpoint is entry {} of this database's ledger (same hash)",
                p.checkpoint_seq
            ),
        )),
        Some(_) => checks.push(Check::problem(
            "ledger",
            format!(
                "entry {} of this database's ledger is another entry: the ledger was rewritten or replaced",
                p.checkpoint_seq
            ),
        )),
        None => checks.push(Check::problem(
            "ledger",
            format!(
                "this database's ledger has no entry {}: it was rolled back or an older backup restored",
                p.checkpoint_seq
            ),
        )),
    }
    let pos = format!("row (chain {}, seq {}) of {}", p.chain, p.seq, o.display());
    if rows.is_empty() {
        match anchor {
            Some((a, _)) if a >= p.seq => checks.push(Check::note(
                "row",
                format!(
                    "{pos} was purged since the checkpoint (purge anchor at {a}): its values cannot be re-read; its deletion certificate covers it"
                ),
            )),
            _ => checks.push(Check::problem(
                "row",
                format!(
                    "{pos} is no longer in the table: it was removed outside pg_worm, or an older backup was restored"
                ),
            )),
        }
        return Ok(checks);
    }
    if rows.len() > 1 {
        checks.push(Check::problem(
            "row",
            format!(
                "{pos} appears {} times: rows were inserted out of chain",
                rows.len()
            ),
        ));
    }
    let r = &rows[0];
    let mut differs = Vec::new();
    if r.row_hash != p.row_hash {
        differs.push("its current values no longer hash to the proof's row hash: it was changed after the checkpoint".to_owned());
    }
    if r.stored_link.as_deref() != Some(&p.link[..]) {
        differs.push("its stored link (worm_hash) is not the proof's".to_owned());
    }
    if r.inserted_at != Some(p.inserted_at) {
        differs.push("its worm_inserted_at is not the proof's".to_owned());
    }
    if differs.is_empty() {
        checks.push(Check::ok(
            "row",
            format!(
                "{pos}: its current values hash to the proof's row hash {}…, and its stored link and insertion time are the proof's: these values were in the table at the checkpoint",
                short(&r.row_hash)
            ),
        ));
    } else {
        checks.push(Check::problem(
            "row",
            format!("{pos}: {}", differs.join("; ")),
        ));
    }
    Ok(checks)
}

// --- certificate -----------------------------------------------------------------------------

pub fn certificate(cert_path: &Path, db_url: Option<&str>, json: bool) -> ExitCode {
    let text = match read_text(cert_path) {
        Ok(t) => t,
        Err(e) => return fatal(&e),
    };
    let c = match parse_json(cert_path, &text)
        .and_then(|j| Certificate::parse(j).map_err(|m| malformed(cert_path, m)))
    {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    let mut checks = c.offline_checks();
    if let Some(url) = db_url {
        match certificate_db_checks(url, &c) {
            Ok(more) => checks.extend(more),
            Err(Failure::Damaged(msg)) => checks.push(Check::problem("table", msg)),
            Err(Failure::Fatal(e)) => return fatal(&e),
        }
    }
    let problems = problems(&checks);
    if json {
        let v = json!({
            "ok": problems == 0,
            "certificate_id": c.id,
            "ledger_seq": c.entry.seq,
            "table": {"uid": format_uuid(&c.table_uid), "name": c.table_name},
            "checked_against_database": db_url.is_some(),
            "problems": problems,
            "checks": checks,
        });
        print_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        ));
    } else {
        let mut out = format!("worm-verify: {}\n", c.describe());
        out.push_str(&report::checks_text(&checks));
        out.push_str(&if problems == 0 {
            format!(
                "OK: the certificate verifies{}.\n",
                if db_url.is_some() {
                    " (offline and against the database)"
                } else {
                    " offline (add --db to check it against the ledger and the table)"
                }
            )
        } else {
            format!(
                "PROBLEMS FOUND: {} in the certificate of ledger entry {}.\n",
                plural(problems, "problem", "problems"),
                c.entry.seq
            )
        });
        print_out(&out);
    }
    exit(problems)
}

fn same_table(doc: &Json, uid: &[u8; 16]) -> bool {
    doc.get("table")
        .and_then(|t| t.get("uid"))
        .and_then(Json::as_str)
        .and_then(core::parse_uuid)
        .is_some_and(|u| u == *uid)
}

/// The certificate against worm.ledger, worm.anchors and the table (read-only, no pg_worm
/// function).
fn certificate_db_checks(url: &str, c: &Certificate) -> Result<Vec<Check>, Failure> {
    let mut client = db::connect(url)?;
    let mut tx = db::begin_read(&mut client)?;
    let entries = db::ledger_all(&mut tx)?;
    let opened = match db::open_table(&mut tx, TableSel::Uid(c.table_uid)) {
        Ok(o) => Ok(o),
        Err(Failure::Damaged(why)) => Err(why),
        Err(Failure::Fatal(e)) if format!("{e:#}").contains("is protected in this database") => {
            Err(format!("{e:#}"))
        }
        Err(e) => return Err(e),
    };
    // The first row after each anchor, to check that it links to the anchor.
    let mut first_rows = Vec::new();
    if let Ok(o) = &opened {
        for ch in &c.chains {
            if let Some((a, _)) = db::anchor_of(o, ch.chain) {
                if a == ch.last_seq {
                    first_rows.push((ch.chain, db::fetch_row(&mut tx, o, ch.chain, a + 1)?));
                }
            }
        }
    }
    tx.commit()
        .map_err(db::pg)
        .context("cannot end the read-only transaction")?;

    let mut checks = Vec::new();
    let seq = c.entry.seq;
    // Its ledger entry.
    match entries.iter().find(|e| e.seq == seq) {
        Some(e)
            if e.hash == c.entry.hash
                && e.prev == c.entry.prev
                && canonical_json(&e.document) != canonical_json(c.document()) =>
        {
            checks.push(Check::problem(
                "ledger_entry",
                if c.hash_ok() {
                    format!("entry {seq} of worm.ledger has this certificate's hash, but its document differs from this copy, which recomputes: the ledger's copy was altered")
                } else {
                    format!("entry {seq} of worm.ledger has this certificate's hash, but its document differs from this copy: this copy was altered (the ledger holds the original)")
                },
            ))
        }
        Some(e) if e.hash == c.entry.hash && e.prev == c.entry.prev => checks.push(Check::ok(
            "ledger_entry",
            format!("entry {seq} of worm.ledger is this certificate (same hash, prev_hash and document)"),
        )),
        Some(_) => checks.push(Check::problem(
            "ledger_entry",
            format!("entry {seq} of worm.ledger is another entry: the ledger was rewritten or replaced, or the certificate is from another database"),
        )),
        None => checks.push(Check::problem(
            "ledger_entry",
            format!(
                "worm.ledger has no entry {seq} (it ends at {}): the ledger was rolled back or an older backup restored",
                entries.last().map_or(0, |e| e.seq)
            ),
        )),
    }
    // The ledger up to it, then the rest.
    let upto: Vec<LedgerEntry> = entries.iter().filter(|e| e.seq <= seq).cloned().collect();
    let r = verify_ledger(upto);
    if r.ok {
        checks.push(Check::ok(
            "ledger",
            format!(
                "the ledger verifies from entry 1 to entry {seq} ({} recomputed)",
                plural(r.entries as usize, "entry", "entries")
            ),
        ));
    } else {
        checks.push(Check::problem(
            "ledger",
            format!("the ledger up to entry {seq} does not verify: {}", r.detail),
        ));
    }
    let after = entries.iter().filter(|e| e.seq > seq).count();
    if after > 0 && r.ok {
        let all = verify_ledger(entries.clone());
        if all.ok {
            checks.push(Check::ok(
                "ledger",
                format!(
                    "the {} after it verify too",
                    plural(after, "entry", "entries")
                ),
            ));
        } else {
            checks.push(Check::problem(
                "ledger",
                format!(
                    "the ledger after entry {seq} does not verify: {}",
                    all.detail
                ),
            ));
        }
    }
    // The table's chains start at its anchors.
    let o = match opened {
        Ok(o) => o,
        Err(why) => {
            checks.push(Check::problem(
                "table",
                format!("the certificate's table cannot be checked: {why} (dropped, or another database)"),
            ));
            return Ok(checks);
        }
    };
    for ch in &c.chains {
        let n = ch.chain;
        let last = ch.last_seq;
        match db::anchor_of(&o, n) {
            None => checks.push(Check::problem(
                "anchor",
                format!("chain {n} of {} has no purge anchor: the purge was undone or an older backup restored", o.display()),
            )),
            Some((a, _)) if a < last => checks.push(Check::problem(
                "anchor",
                format!("chain {n}'s purge anchor is at {a}, before the certificate's last removed row {last}: the anchors were rolled back or an older backup restored"),
            )),
            Some((a, link_now)) if a == last => {
                if link_now == Some(ch.anchor_link) {
                    checks.push(Check::ok(
                        "anchor",
                        format!("chain {n}: the table's purge anchor is at seq {last} with the certificate's anchor link {}…", short(&ch.anchor_link)),
                    ));
                } else {
                    checks.push(Check::problem(
                        "anchor",
                        format!("chain {n}'s purge anchor at {last} has another link than the certificate's anchor_link: the anchor was rewritten"),
                    ));
                }
                let rows = first_rows
                    .iter()
                    .find(|(c, _)| *c == n)
                    .map(|(_, r)| r.as_slice())
                    .unwrap_or_default();
                match rows.first() {
                    None => checks.push(Check::ok(
                        "first_row",
                        format!("chain {n}: no row after the anchor yet"),
                    )),
                    Some(r) => {
                        let expected = r.inserted_at.map(|at| {
                            link(&o.uid, n, last + 1, at, &ch.anchor_link, &r.row_hash)
                        });
                        if expected.is_some()
                            && r.stored_link.as_deref() == expected.as_ref().map(|h| &h[..])
                        {
                            checks.push(Check::ok(
                                "first_row",
                                format!("chain {n}: row {}, the first surviving row, links to the certificate's anchor", last + 1),
                            ));
                        } else {
                            checks.push(Check::problem(
                                "first_row",
                                format!("chain {n}: row {} does not link to the certificate's anchor (or its values changed): run worm-verify table for details", last + 1),
                            ));
                        }
                    }
                }
            }
            Some((a, _)) => {
                // Purged further since: a later certificate must continue from this one.
                let later = entries.iter().find(|e| {
                    e.seq > seq
                        && e.document.get("event").and_then(Json::as_str) == Some("purge")
                        && same_table(&e.document, &o.uid)
                        && e.document
                            .get("chains")
                            .and_then(Json::as_array)
                            .is_some_and(|cs| {
                                cs.iter().any(|x| {
                                    x.get("chain").and_then(Json::as_i64) == Some(i64::from(n))
                                        && x.get("first_seq").and_then(Json::as_i64)
                                            == Some(last + 1)
                                })
                            })
                });
                match later {
                    Some(e) => checks.push(Check::ok(
                        "anchor",
                        format!("chain {n}: purged further since (anchor now at {a}) by the certificate of ledger entry {}, which continues from this one", e.seq),
                    )),
                    None => checks.push(Check::problem(
                        "anchor",
                        format!("chain {n} was purged past seq {last} (anchor now at {a}) without a certificate continuing from this one"),
                    )),
                }
            }
        }
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ChainRow {
        ChainRow {
            chain: Some(0),
            rows_checked: 5,
            ok: true,
            first_bad_seq: None,
            detail: "ok: 5 rows, head at seq 5".into(),
            problems: 0,
            head_seq: Some(5),
            head_link: None,
            whole_table: false,
        }
    }

    #[test]
    fn checkpoint_problems_merge_into_chain_rows() {
        let mut r = row();
        merge_problem(&mut r, Some(6), "chain 0 is shorter than its checkpoint: rows 6..12 removed (tail cut, rollback or older backup)");
        assert!(!r.ok);
        assert_eq!(r.problems, 1);
        assert_eq!(r.first_bad_seq, Some(6));
        assert!(r.detail.starts_with("chain 0 is shorter"));
        merge_problem(&mut r, Some(3), "x");
        assert_eq!(r.first_bad_seq, Some(3));
        assert_eq!(r.problems, 2);
        assert!(r.detail.ends_with("; x"));
    }

    #[test]
    fn sql_literals_are_quoted() {
        assert_eq!(sql_literal("jane's key"), "'jane''s key'");
    }

    #[test]
    fn ledger_check_wording() {
        let d = Digest::parse(pg_worm_core::fixtures::digest_json(
            9,
            &[(1, Some([1; 32]))],
            [2; 32],
            1,
        ))
        .expect("valid");
        let e = LedgerEntry {
            seq: 9,
            document: d.document().clone(),
            prev: d.entry.prev.to_vec(),
            hash: d.entry.hash.to_vec(),
        };
        assert_eq!(ledger_check(Some(&e), None, &d).status, Status::Ok);
        let mut other = e.clone();
        other.hash = vec![0; 32];
        assert!(ledger_check(Some(&other), None, &d)
            .detail
            .contains("rewritten or replaced"));
        let mut altered = e.clone();
        altered.document["rows"] = json!(99);
        assert!(ledger_check(Some(&altered), None, &d)
            .detail
            .contains("the ledger's copy was altered"));
        let c = ledger_check(None, Some(7), &d);
        assert_eq!(c.status, Status::Problem);
        assert!(c.detail.contains("ends at entry 7"), "{}", c.detail);
    }

    #[test]
    fn sign_refuses_altered_digests_and_countersigns_good_ones() {
        use pg_worm_core::fixtures::digest_json;
        let dir = std::env::temp_dir().join(format!("wv-sign-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (jane, bob) = (dir.join("jane.key"), dir.join("bob.key"));
        sig::write_key_file(&jane, &sig::generate().expect("key")).expect("jane");
        sig::write_key_file(&bob, &sig::generate().expect("key")).expect("bob");
        let d = dir.join("d.json");
        let j = digest_json(9, &[(3, Some([1; 32]))], [2; 32], 3);
        write_json(Some(&d), &j).expect("digest");
        let s = dir.join("s.json");
        assert_eq!(sign(&jane, "jane", &d, Some(&s)), ExitCode::SUCCESS);
        assert_eq!(sign(&bob, "bob", &s, Some(&s)), ExitCode::SUCCESS);
        let signed = load_digest(&s).expect("signed digest");
        assert!(signed.hash_ok());
        let results = signed.check_signatures(&[]);
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r.valid));
        // Altered: refused, nothing written.
        let mut altered = j.clone();
        altered["checkpoint"]["rows"] = json!(4);
        let a = dir.join("a.json");
        write_json(Some(&a), &altered).expect("altered");
        let out = dir.join("never.json");
        assert_eq!(sign(&jane, "jane", &a, Some(&out)), ExitCode::from(1));
        assert!(!out.exists());
        // A digest carrying a signature that does not verify: no countersignature.
        let mut forged: Json =
            serde_json::from_str(&std::fs::read_to_string(&s).expect("read")).expect("json");
        forged["signatures"][0]["signature"] = json!(hex::encode([7u8; 64]));
        let f = dir.join("f.json");
        write_json(Some(&f), &forged).expect("forged");
        assert_eq!(sign(&bob, "bob", &f, Some(&out)), ExitCode::from(1));
        // Not a digest, no key: cannot be done.
        assert_eq!(sign(&jane, "jane", &jane, Some(&out)), ExitCode::from(2));
        assert_eq!(
            sign(&dir.join("none.key"), "x", &d, Some(&out)),
            ExitCode::from(2)
        );
        assert_eq!(sign(&jane, " ", &d, Some(&out)), ExitCode::from(2));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn proof_and_certificate_commands_offline() {
        use pg_worm_core::fixtures::{certificate_json, proof_json};
        let dir = std::env::temp_dir().join(format!("wv-docs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p = dir.join("p.json");
        write_json(Some(&p), &proof_json(33, 17)).expect("proof");
        assert_eq!(proof(&p, None, None, true, true), ExitCode::SUCCESS);
        let mut bad = proof_json(33, 17);
        bad["path"][1] = json!(hex::encode([0u8; 32]));
        write_json(Some(&p), &bad).expect("proof");
        assert_eq!(proof(&p, None, None, true, false), ExitCode::from(1));
        let c = dir.join("c.json");
        write_json(Some(&c), &certificate_json()).expect("cert");
        assert_eq!(certificate(&c, None, true), ExitCode::SUCCESS);
        let mut edited = certificate_json();
        edited["certificate"]["removed"]["rows"] = json!(1);
        write_json(Some(&c), &edited).expect("cert");
        assert_eq!(certificate(&c, None, true), ExitCode::from(1));
        std::fs::write(&c, "{not json").expect("write");
        assert_eq!(certificate(&c, None, true), ExitCode::from(2));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn json_files_are_written_atomically() {
        let dir = std::env::temp_dir().join(format!("wv-out-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p = dir.join("d.json");
        write_json(Some(&p), &json!({"a": 1})).expect("written");
        write_json(Some(&p), &json!({"a": 2})).expect("replaced");
        let back: Json =
            serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
        assert_eq!(back["a"], 2);
        assert_eq!(
            std::fs::read_dir(&dir).expect("dir").count(),
            1,
            "no temp file left"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
