//! Does the table, as read now, still extend a checkpoint taken earlier? Pure: the digest and
//! the rows' positions and links come in, findings go out.
//!
//! Per chain: the row at the checkpoint's head_seq must still be there with exactly the
//! checkpoint's head link (unless a purge has since gone past it); a chain whose newest row is
//! now below that head lost its tail. Then the Merkle root over the links of the rows the
//! checkpoint covered (per chain: after its anchor, up to its head; in (chain, seq) order)
//! must be the checkpoint's root, which catches a change anywhere below the heads too.
//!
//! A checkpoint also records where the server's WAL stood ([`WalPosition`]: cluster, timeline,
//! LSN and the timelines it came through). With the same of the server verified now, the
//! [`Lineage`] says whether the checkpoint is in this server's history, ahead of it (a standby
//! that has not replayed it yet), or on another branch of a fork (a split brain after a
//! failover, a point-in-time recovery to before it): a chain that differs is then named as a
//! fork, not as a cut.

use crate::digest::{Digest, DigestChain};
use crate::doc::{format_uuid, short};
use crate::findings::{Check, Status};
use crate::{Hash, LedgerEntry};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;

/// One chain of the table as read now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainState {
    /// The purge anchor in worm.anchors (seq, link; link None when unusable).
    pub anchor: Option<(i64, Option<Hash>)>,
    /// (worm_seq, worm_hash) of every row with a non-NULL seq, ascending by seq; the link is
    /// None when NULL or not 32 bytes.
    pub rows: Vec<(i64, Option<Hash>)>,
}

/// A finding about one chain: the check, and the first sequence number concerned when it is a
/// problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFinding {
    pub chain: i32,
    pub check: Check,
    pub first_bad_seq: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comparison {
    pub chains: Vec<ChainFinding>,
    /// Table-level findings: identity, number of chains, WAL positions, the Merkle root.
    pub table: Vec<Check>,
    /// How the checkpoint's WAL position relates to this server's, when both are known.
    pub lineage: Option<Lineage>,
}

impl Comparison {
    pub fn problems(&self) -> usize {
        self.chains
            .iter()
            .filter(|f| f.check.status == Status::Problem)
            .count()
            + self
                .table
                .iter()
                .filter(|c| c.status == Status::Problem)
                .count()
    }

    /// Everything matched exactly (no problem, and nothing skipped or purged since).
    pub fn exact(&self) -> bool {
        self.chains.iter().all(|f| f.check.status == Status::Ok)
            && self.table.iter().all(|c| c.status == Status::Ok)
    }

    /// The ledger finding in the light of the WAL positions: after a fork, the ledger entry
    /// that differs or is missing is the other branch's, not a rewrite or a rollback; on a
    /// server behind the checkpoint's position, it is not replayed yet.
    pub fn ledger_finding(&self, ledger: Check) -> Check {
        let why = match self.lineage {
            Some(Lineage::Forked { .. }) => "the ledgers forked with the servers' histories (the checkpoint is on the other branch; see the fork finding)",
            Some(Lineage::Behind { standby: true }) => "not yet replayed here (this server's WAL has not reached the checkpoint's position)",
            Some(Lineage::Behind { standby: false }) => "rolled back (this server's WAL is behind the checkpoint's position: an older copy of the data directory was started)",
            _ => return ledger,
        };
        if ledger.status != Status::Problem {
            return ledger;
        }
        let what = ledger
            .detail
            .split_once(": the ledger was")
            .map_or(ledger.detail.as_str(), |(w, _)| w);
        Check::problem(ledger.check, format!("{what}: {why}"))
    }

    /// All findings in report order: table identity first, then chains, then the root.
    pub fn all_checks(&self) -> Vec<Check> {
        let (root, other): (Vec<&Check>, Vec<&Check>) =
            self.table.iter().partition(|c| c.check == "merkle_root");
        other
            .into_iter()
            .cloned()
            .chain(self.chains.iter().map(|f| f.check.clone()))
            .chain(root.into_iter().cloned())
            .collect()
    }
}

/// Where a server's WAL stood: its cluster (`pg_control`'s system identifier), timeline and
/// LSN, and the timelines it came through. Recorded in a checkpoint as `"wal"`; read from the
/// server at verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalPosition {
    pub system_identifier: u64,
    pub timeline: u32,
    pub lsn: u64,
    /// Every earlier timeline of this one, oldest first, with the LSN where it was left (the
    /// timeline's `.history` file in pg_wal).
    pub history: Vec<(u32, u64)>,
    /// A standby (in recovery): `lsn` is where replay stands.
    pub in_recovery: bool,
}

/// An LSN as PostgreSQL writes it: `X/Y`, both hexadecimal.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// The `(timeline, switch LSN)` lines of a PostgreSQL timeline history file
/// (`pg_wal/0000000N.history`: `parent_tli <TAB> X/Y <TAB> reason`; `#` comments and blank
/// lines skipped). None when a line does not parse.
pub fn parse_history_file(text: &str) -> Option<Vec<(u32, u64)>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let tli = f.next()?.parse::<u32>().ok()?;
        let lsn = parse_lsn(f.next()?)?;
        out.push((tli, lsn));
    }
    Some(out)
}

impl WalPosition {
    /// The `"wal"` field of a checkpoint document.
    pub fn to_json(&self) -> Json {
        json!({
            "system_identifier": self.system_identifier.to_string(),
            "timeline": self.timeline,
            "lsn": format_lsn(self.lsn),
            "history": self.history.iter()
                .map(|(t, l)| json!({"timeline": t, "switched_at": format_lsn(*l)}))
                .collect::<Vec<_>>(),
        })
    }

    /// The `"wal"` field of a checkpoint document: None when absent (checkpoints taken before
    /// pg_worm recorded it), Err when present but malformed.
    pub fn from_document(doc: &Json) -> Result<Option<WalPosition>, String> {
        let Some(w) = doc.get("wal").filter(|w| !w.is_null()) else {
            return Ok(None);
        };
        let bad = |what: &str| format!("checkpoint.wal.{what} is missing or malformed");
        let system_identifier = w
            .get("system_identifier")
            .and_then(Json::as_str)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad("system_identifier"))?;
        let timeline = w
            .get("timeline")
            .and_then(Json::as_u64)
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| bad("timeline"))?;
        let lsn = w
            .get("lsn")
            .and_then(Json::as_str)
            .and_then(parse_lsn)
            .ok_or_else(|| bad("lsn"))?;
        let mut history = Vec::new();
        for h in w
            .get("history")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let t = h
                .get("timeline")
                .and_then(Json::as_u64)
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| bad("history"))?;
            let l = h
                .get("switched_at")
                .and_then(Json::as_str)
                .and_then(parse_lsn)
                .ok_or_else(|| bad("history"))?;
            history.push((t, l));
        }
        Ok(Some(WalPosition {
            system_identifier,
            timeline,
            lsn,
            history,
            in_recovery: false,
        }))
    }

    /// The segments of this history: (timeline, where it ended), the last one ending at `lsn`.
    fn segments(&self) -> Vec<(u32, u64)> {
        let mut s = self.history.clone();
        s.push((self.timeline, self.lsn));
        s
    }

    fn describe(&self) -> String {
        format!("timeline {}, LSN {}", self.timeline, format_lsn(self.lsn))
    }
}

/// Which server switched timeline where the histories split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkSide {
    /// This server left the timeline (it was promoted, or recovered to that point); the
    /// checkpoint's server went on writing on it.
    Here,
    /// The checkpoint's server left the timeline (it was promoted); this one went on.
    There,
    /// Both left it, at different points or for different timelines.
    Both,
}

/// How the checkpoint's WAL position relates to this server's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lineage {
    /// The checkpoint's position is in this server's history: what it covered was here.
    Contained,
    /// This server has not reached the checkpoint's position (same history, behind it): a
    /// standby that has not replayed it yet, or, on a primary, an older copy of the data
    /// directory that was started (a rollback).
    Behind { standby: bool },
    /// The histories split: on `timeline`, at LSN `at`.
    Forked {
        timeline: u32,
        at: u64,
        side: ForkSide,
    },
    /// Another cluster (pg_upgrade, a restored dump, a logical replica): not comparable.
    OtherCluster,
}

/// Where the checkpoint's position `there` stands in this server's history `here`.
pub fn lineage(there: &WalPosition, here: &WalPosition) -> Lineage {
    if there.system_identifier != here.system_identifier {
        return Lineage::OtherCluster;
    }
    let (a, b) = (there.segments(), here.segments());
    let behind = Lineage::Behind {
        standby: here.in_recovery,
    };
    let mut begin = 0u64;
    let mut prev_tl = a.first().map(|x| x.0).unwrap_or(0);
    for i in 0..a.len().min(b.len()) {
        let ((ta, ea), (tb, eb)) = (a[i], b[i]);
        if ta != tb {
            return Lineage::Forked {
                timeline: prev_tl,
                at: begin,
                side: ForkSide::Both,
            };
        }
        let (a_last, b_last) = (i + 1 == a.len(), i + 1 == b.len());
        let fork = |at: u64, side| Lineage::Forked {
            timeline: ta,
            at,
            side,
        };
        match (a_last, b_last) {
            (true, true) if ea <= eb => return Lineage::Contained,
            (true, true) => return behind,
            (true, false) if ea <= eb => return Lineage::Contained,
            (true, false) => return fork(eb, ForkSide::Here),
            (false, true) if eb <= ea => return behind,
            (false, true) => return fork(ea, ForkSide::There),
            (false, false) if ea != eb => return fork(ea.min(eb), ForkSide::Both),
            (false, false) => {}
        }
        begin = ea;
        prev_tl = ta;
    }
    Lineage::Contained
}

/// The finding about the WAL positions (check `"wal"`), when the checkpoint recorded one.
/// `chain_problems`: whether a chain differs (a server merely behind is then a problem).
fn wal_check(
    there: &WalPosition,
    here: Option<&WalPosition>,
    lineage: Option<&Lineage>,
    chain_problems: bool,
) -> Check {
    let (Some(here), Some(lin)) = (here, lineage) else {
        return Check::note(
            "wal",
            format!(
                "the checkpoint was taken at {}, but this server's WAL position and timeline history could not be read: a shorter chain cannot be told from a fork",
                there.describe()
            ),
        );
    };
    let server = if here.in_recovery {
        "this standby"
    } else {
        "this server"
    };
    match lin {
        Lineage::Contained => Check::ok(
            "wal",
            format!(
                "the checkpoint's WAL position ({}) is in {server}'s history (now {})",
                there.describe(),
                here.describe()
            ),
        ),
        Lineage::OtherCluster => Check::note(
            "wal",
            format!(
                "the checkpoint was taken on another cluster (system identifier {}, this one is {}: pg_upgrade, a restored dump or a logical replica): WAL positions cannot be compared, the rows were",
                there.system_identifier, here.system_identifier
            ),
        ),
        Lineage::Behind { standby: true } => Check::new(
            "wal",
            if chain_problems { Status::Problem } else { Status::Note },
            format!(
                "{server} ({}) has not reached the checkpoint's WAL position ({}): what was written since is not replayed here yet",
                here.describe(),
                there.describe(),
            ),
        ),
        Lineage::Behind { standby: false } => Check::problem(
            "wal",
            format!(
                "rollback: {server} ({}) is behind the checkpoint's WAL position ({}) on the same timeline: an older copy of the data directory was started (or WAL was lost in a crash, with fsync or synchronous_commit off)",
                here.describe(),
                there.describe(),
            ),
        ),
        Lineage::Forked { timeline, at, side } => Check::problem(
            "wal",
            format!(
                "fork: {server} and the checkpoint's server have different histories from timeline {timeline}, LSN {} on ({}; the checkpoint was taken at {}, {server} is at {}): a split brain after failover, or a point-in-time recovery to before the checkpoint",
                format_lsn(*at),
                match side {
                    ForkSide::Here => format!("{server} left timeline {timeline} there (promoted or recovered to that point) while the checkpoint's server went on writing on it"),
                    ForkSide::There => format!("the checkpoint's server left timeline {timeline} there (promoted) while {server} went on writing on it"),
                    ForkSide::Both => "both left it, not together".to_owned(),
                },
                there.describe(),
                here.describe()
            ),
        ),
    }
}

fn finding(chain: i32, status: Status, seq: Option<i64>, detail: String) -> ChainFinding {
    ChainFinding {
        chain,
        check: Check::new(format!("chain {chain}"), status, detail),
        first_bad_seq: if status == Status::Problem { seq } else { None },
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The links of the rows a checkpoint covered, in (chain, seq) order: per chain of `d`, the
/// rows after its anchor then, up to its head then, that have a valid link.
pub fn covered_leaves(d: &Digest, state: &BTreeMap<i32, ChainState>) -> Vec<(i32, i64, Hash)> {
    let mut out = Vec::new();
    for dc in &d.chains {
        if let Some(cs) = state.get(&dc.chain) {
            out.extend(
                cs.rows
                    .iter()
                    .filter(|(s, _)| *s > dc.anchor_seq && *s <= dc.head_seq)
                    .filter_map(|(s, l)| l.map(|l| (dc.chain, *s, l))),
            );
        }
    }
    out
}

/// The links of every surviving row with a valid link, in (chain, seq) order: the leaves of
/// a new checkpoint.
pub fn surviving_leaves(state: &BTreeMap<i32, ChainState>) -> Vec<(i32, i64, Hash)> {
    state
        .iter()
        .flat_map(|(c, cs)| cs.rows.iter().filter_map(|(s, l)| l.map(|l| (*c, *s, l))))
        .collect()
}

/// The heads of every chain for a new checkpoint: its newest row, else its purge anchor,
/// else (0, none).
pub fn heads(state: &BTreeMap<i32, ChainState>) -> Vec<DigestChain> {
    state
        .iter()
        .map(|(c, cs)| {
            let last = cs.rows.iter().rev().find(|(_, l)| l.is_some());
            let (anchor_seq, anchor_link) = cs.anchor.unwrap_or((0, None));
            let (head_seq, head_link) = match (last, cs.anchor) {
                (Some((s, l)), _) => (*s, *l),
                (None, Some(_)) => (anchor_seq, anchor_link),
                (None, None) => (0, None),
            };
            DigestChain {
                chain: *c,
                head_seq,
                head_link,
                anchor_seq,
                anchor_link,
                tree: None,
            }
        })
        .collect()
}

/// The table's identity and number of chains against the digest's.
fn identity_checks(d: &Digest, uid: &[u8; 16], chains_now: i32) -> Vec<Check> {
    let mut out = Vec::new();
    if *uid == d.table_uid {
        out.push(Check::ok(
            "table_uid",
            format!(
                "the table is the checkpoint's table (table_uid {})",
                format_uuid(uid)
            ),
        ));
    } else {
        out.push(Check::problem(
            "table_uid",
            format!(
                "the checkpoint is of another table: table_uid {} (named {} then), this table is {}",
                format_uuid(&d.table_uid),
                d.table_name,
                format_uuid(uid)
            ),
        ));
    }
    let n_digest = d.chains.len();
    if i64::from(chains_now) != n_digest as i64 {
        out.push(Check::problem(
            "chains",
            format!(
                "the table has {chains_now} chain{}, the checkpoint recorded {n_digest}",
                plural(i64::from(chains_now))
            ),
        ));
    }
    out
}

/// The purge anchor can only move forward, and keeps its link.
fn anchor_finding(dc: &DigestChain, anchor: (i64, Option<Hash>)) -> Option<ChainFinding> {
    let c = dc.chain;
    let (a_now, a_now_link) = anchor;
    if a_now < dc.anchor_seq {
        Some(finding(
            c,
            Status::Problem,
            Some(a_now + 1),
            format!(
                "chain {c}'s purge anchor is at {a_now}, behind the checkpoint's {}: the anchors were rolled back or an older backup restored",
                dc.anchor_seq
            ),
        ))
    } else if a_now == dc.anchor_seq && a_now > 0 && a_now_link != dc.anchor_link {
        Some(finding(
            c,
            Status::Problem,
            Some(a_now),
            format!(
                "chain {c}'s purge anchor at {a_now} has another link than at the checkpoint: the anchor was rewritten"
            ),
        ))
    } else {
        None
    }
}

/// A chain purged up to or past its head at the checkpoint: only the anchor can be compared.
fn purged_head_finding(dc: &DigestChain, anchor: (i64, Option<Hash>)) -> ChainFinding {
    let (c, h) = (dc.chain, dc.head_seq);
    let (a_now, a_now_link) = anchor;
    if a_now > h {
        return finding(
            c,
            Status::Note,
            None,
            format!(
                "chain {c}: purged past the checkpoint (purge anchor now at {a_now}, checkpoint head at {h}): its head can no longer be compared"
            ),
        );
    }
    if a_now_link.is_none() || a_now_link != dc.head_link {
        return finding(
            c,
            Status::Problem,
            Some(h),
            format!(
                "row {h} differs from the checkpoint: the chain was rewritten or replaced (the purge anchor at {h} has another link)"
            ),
        );
    }
    if dc.anchor_seq == h {
        finding(
            c,
            Status::Ok,
            None,
            format!("chain {c}: no row after its purge anchor at {h}, then as now"),
        )
    } else {
        finding(
            c,
            Status::Note,
            None,
            format!(
                "chain {c}: purged past the checkpoint: its head row {h} is now the purge anchor, with the checkpoint's link"
            ),
        )
    }
}

/// Where the histories split, when they do.
fn fork_point(lineage: Option<&Lineage>) -> Option<String> {
    match lineage {
        Some(Lineage::Forked { timeline, at, .. }) => Some(format!(
            "the histories diverge from timeline {timeline}, LSN {} on",
            format_lsn(*at)
        )),
        _ => None,
    }
}

/// A chain whose newest row (`newest`) is below the checkpoint's head `h`.
fn shorter_finding(c: i32, newest: i64, h: i64, lineage: Option<&Lineage>) -> ChainFinding {
    let first = newest + 1;
    let detail = match (lineage, fork_point(lineage)) {
        (_, Some(fork)) => format!(
            "chain {c} forked: this branch ends at row {newest}, the checkpoint's branch had rows up to {h}: rows {first}..{h} of the checkpoint are on the other branch only ({fork}; a split brain after failover)"
        ),
        (Some(Lineage::Contained), _) => format!(
            "chain {c} is shorter than its checkpoint: rows {first}..{h} removed (tail cut, rollback or older backup)"
        ),
        (Some(Lineage::Behind { standby: true }), _) => format!(
            "chain {c}: rows {first}..{h} of the checkpoint are not here yet: not yet replayed (this server's WAL has not reached the checkpoint's position)"
        ),
        (Some(Lineage::Behind { standby: false }), _) => format!(
            "chain {c} is shorter than its checkpoint: rows {first}..{h} removed (rollback: this server's WAL is behind the checkpoint's position, an older copy of the data directory was started)"
        ),
        _ => format!(
            "chain {c} is shorter than its checkpoint: rows {first}..{h} are not here: removed (tail cut, rollback or older backup), or this server is on the shorter branch of a fork (a split brain after failover); the digest cannot tell which without both servers' WAL positions: compare their timelines (pg_control_checkpoint(), the .history files in pg_wal) and where each was promoted"
        ),
    };
    finding(c, Status::Problem, Some(first), detail)
}

/// The row at the checkpoint's head: still there, with the checkpoint's link.
fn head_finding(
    dc: &DigestChain,
    cs: &ChainSummary,
    a_now: i64,
    lineage: Option<&Lineage>,
) -> ChainFinding {
    let (c, h) = (dc.chain, dc.head_seq);
    if !cs.at_head {
        let newest = cs.newest.unwrap_or(a_now).max(a_now);
        if newest < h {
            return shorter_finding(c, newest, h, lineage);
        }
        return finding(
            c,
            Status::Problem,
            Some(h),
            format!("row {h}, the head of chain {c} at the checkpoint, is missing"),
        );
    }
    if cs.head_held {
        return finding(
            c,
            Status::Ok,
            None,
            format!(
                "chain {c}: row {h} still has the checkpoint's head link {}…",
                dc.head_link.as_ref().map(short).unwrap_or_default()
            ),
        );
    }
    let detail = match (lineage, fork_point(lineage)) {
        (_, Some(fork)) => format!(
            "chain {c} forked: row {h} is another row than the checkpoint's head ({fork}; a split brain after failover): the branches differ from row {h} or earlier"
        ),
        (None, _) => format!(
            "row {h} differs from the checkpoint: chain {c} forked at or before row {h}: it was rewritten or replaced, or this server and the checkpoint's are two branches of a split brain after failover (the digest records no WAL position to tell which: compare the servers' timelines)"
        ),
        _ => format!("row {h} differs from the checkpoint: the chain was rewritten or replaced"),
    };
    finding(c, Status::Problem, Some(h), detail)
}

/// Every finding about one chain of the checkpoint; `purged_since` collects chains whose
/// anchor moved forward since.
fn chain_findings(
    dc: &DigestChain,
    chains_now: i32,
    cs: &ChainSummary,
    purged_since: &mut Vec<String>,
    lineage: Option<&Lineage>,
) -> Vec<ChainFinding> {
    let c = dc.chain;
    if c >= chains_now {
        return vec![finding(
            c,
            Status::Problem,
            None,
            format!("chain {c} of the checkpoint no longer exists in the table"),
        )];
    }
    let anchor = cs.anchor.unwrap_or((0, None));
    let mut out: Vec<ChainFinding> = anchor_finding(dc, anchor).into_iter().collect();
    if anchor.0 > dc.anchor_seq {
        purged_since.push(format!(
            "chain {c} (anchor {} -> {})",
            dc.anchor_seq, anchor.0
        ));
    }
    out.push(if dc.head_seq == 0 {
        finding(
            c,
            Status::Ok,
            None,
            format!("chain {c}: empty at the checkpoint"),
        )
    } else if anchor.0 >= dc.head_seq {
        purged_head_finding(dc, anchor)
    } else {
        head_finding(dc, cs, anchor.0, lineage)
    });
    out
}

/// The Merkle root over what the checkpoint covered (a note when a purge since then
/// legitimately removed some of it).
fn root_check(
    d: &Digest,
    g: &Gathered,
    purged_since: &[String],
    lineage: Option<&Lineage>,
) -> Check {
    if !purged_since.is_empty() && d.format_version >= 2 {
        return unpurged_chain_roots(d, g, purged_since);
    }
    if !purged_since.is_empty() {
        return Check::note(
            "merkle_root",
            format!(
                "Merkle root not compared: {} purged since the checkpoint, so rows it covered are legitimately gone (the heads were compared instead)",
                purged_since.join(", ")
            ),
        );
    }
    let n = g.covered();
    let (root, differ) = if d.format_version >= 2 {
        per_chain_root(d, g)
    } else {
        (g.table_root, String::new())
    };
    if root == d.merkle_root && n == d.merkle_size {
        Check::ok(
            "merkle_root",
            format!(
                "the {n} row{} up to the checkpoint's heads hash to its Merkle root {}…",
                plural(n),
                short(&root)
            ),
        )
    } else {
        Check::problem(
            "merkle_root",
            format!(
                "the {n} row{} up to the checkpoint's heads hash to Merkle root {}…, the checkpoint has {}… over {} row{}: {}",
                plural(n),
                short(&root),
                short(&d.merkle_root),
                d.merkle_size,
                plural(d.merkle_size),
                match lineage {
                    Some(Lineage::Forked { .. }) =>
                        "the rows it covered differ on this branch of the fork",
                    Some(Lineage::Behind { standby: true }) =>
                        "rows it covered are not replayed here yet",
                    _ => "rows it covered were changed, removed, added or reordered",
                }
            ) + &differ,
        )
    }
}

/// Format version 2 after a purge: every chain not purged since the checkpoint must still give
/// its chain root (the purged ones' heads were compared instead).
fn unpurged_chain_roots(d: &Digest, g: &Gathered, purged_since: &[String]) -> Check {
    let mut differ = Vec::new();
    let (mut chains, mut rows) = (0, 0i64);
    for dc in &d.chains {
        let cs = g.chain(dc.chain);
        let purged = cs.anchor.is_some_and(|a| a.0 > dc.anchor_seq);
        if purged {
            continue;
        }
        chains += 1;
        rows += cs.covered;
        if Some((cs.covered, cs.root)) != dc.tree {
            differ.push(dc.chain.to_string());
        }
    }
    let purged = purged_since.join(", ");
    if differ.is_empty() {
        Check::ok(
            "merkle_root",
            format!(
                "the {rows} row{} up to the checkpoint's heads of the {chains} chain{} not purged since hash to their chain roots ({purged} purged since the checkpoint: their heads were compared instead)",
                plural(rows),
                if chains == 1 { "" } else { "s" }
            ),
        )
    } else {
        Check::problem(
            "merkle_root",
            format!(
                "the rows up to the checkpoint's heads of chain{} {} no longer hash to the checkpoint's chain root{}: rows it covered were changed, removed, added or reordered ({purged} purged since the checkpoint)",
                if differ.len() == 1 { "" } else { "s" },
                differ.join(", "),
                if differ.len() == 1 { "" } else { "s" }
            ),
        )
    }
}

/// Format version 2: the table root over every chain's root recomputed from the covered
/// leaves, and the chains whose root is not the checkpoint's (as a message tail).
fn per_chain_root(d: &Digest, g: &Gathered) -> (Hash, String) {
    let mut trees = Vec::with_capacity(d.chains.len());
    let mut differ = Vec::new();
    for dc in &d.chains {
        let cs = g.chain(dc.chain);
        let t = (cs.covered, cs.root);
        if Some(t) != dc.tree {
            differ.push(dc.chain.to_string());
        }
        trees.push(t);
    }
    let tail = if differ.is_empty() {
        String::new()
    } else {
        format!(
            " (chain{} {} differ{})",
            if differ.len() == 1 { "" } else { "s" },
            differ.join(", "),
            if differ.len() == 1 { "s" } else { "" }
        )
    };
    (crate::table_root_v2(&trees), tail)
}

/// Compares the table (its uid, number of chains and per-chain state) with the digest, without
/// WAL positions (a digest that records one gets a note that they could not be compared).
pub fn compare(
    d: &Digest,
    uid: &[u8; 16],
    chains_now: i32,
    state: &BTreeMap<i32, ChainState>,
) -> Comparison {
    compare_at(d, uid, chains_now, state, None, None)
}

/// The ledger seq of the digest's previous checkpoint of the table, to look up in this
/// database's ledger for [`shared_previous`].
pub fn previous_checkpoint_seq(d: &Digest) -> Option<i64> {
    d.document()
        .get("previous_checkpoint")?
        .get("ledger_seq")?
        .as_i64()
}

/// The digest's previous checkpoint as this database's ledger holds it, when it is the one the
/// digest names (the same hash, recomputing from its document, of the same table): then both
/// histories hold it, and rows up to its heads are common to both branches of a fork.
pub fn shared_previous(d: &Digest, stored: Option<&LedgerEntry>) -> Option<Digest> {
    let e = stored?;
    let want = d
        .document()
        .get("previous_checkpoint")?
        .get("hash")?
        .as_str()?;
    if hex::encode(&e.hash) != want {
        return None;
    }
    let whole = json!({
        "checkpoint": e.document,
        "ledger_entry": { "seq": e.seq, "prev_hash": hex::encode(&e.prev), "hash": want },
    });
    let p = Digest::parse(whole).ok()?;
    (p.hash_ok() && p.table_uid == d.table_uid).then_some(p)
}

/// Narrows the forked chains with a checkpoint both histories hold: rows up to its head are
/// on both branches (when the table still holds that head with its link), so the branches
/// part after it.
fn narrow_forks(chains: &mut [ChainFinding], previous: &Digest, g: &Gathered) {
    let n = previous.entry.seq;
    for f in chains.iter_mut() {
        let c = f.chain;
        let Some(bad) = f.first_bad_seq else { continue };
        if f.check.status != Status::Problem
            || !f.check.detail.starts_with(&format!("chain {c} forked:"))
        {
            continue;
        }
        let Some(pc) = previous.chains.iter().find(|x| x.chain == c) else {
            continue;
        };
        let p = pc.head_seq;
        let held = g.chain(c).previous_held;
        if p == 0 || p + 1 >= bad || !held {
            continue;
        }
        let tail = format!("the branches differ from row {bad} or earlier");
        f.check.detail = match f.check.detail.strip_suffix(&tail) {
            Some(head) => format!(
                "{head}the branches part between rows {} and {bad} (rows up to {p} are in the previous checkpoint, ledger entry {n}, which both ledgers hold)",
                p + 1
            ),
            None => format!(
                "{}; rows up to {p} are on both branches (in the previous checkpoint, ledger entry {n}, which both ledgers hold), so they part between rows {} and {bad}",
                f.check.detail,
                p + 1
            ),
        };
        f.first_bad_seq = Some(p + 1);
    }
}

/// Compares the table with the digest; `here` is where this server's WAL stands (None when it
/// could not be read). When the digest records its own WAL position, the two say whether a
/// chain that differs is a fork (a split brain after failover), a cut, or not replayed yet.
/// `previous`: the digest's previous checkpoint when this database's ledger holds it too
/// ([`shared_previous`]), which narrows where forked chains part.
pub fn compare_at(
    d: &Digest,
    uid: &[u8; 16],
    chains_now: i32,
    state: &BTreeMap<i32, ChainState>,
    here: Option<&WalPosition>,
    previous: Option<&Digest>,
) -> Comparison {
    let g = gather_state(d, previous, state);
    compare_gathered(d, uid, chains_now, &g, here, previous)
}

/// [`compare_at`] from what [`Gather`] collected of the table's chains as they streamed by
/// (`previous` must be the one the gathering was given).
pub fn compare_gathered(
    d: &Digest,
    uid: &[u8; 16],
    chains_now: i32,
    g: &Gathered,
    here: Option<&WalPosition>,
    previous: Option<&Digest>,
) -> Comparison {
    let mut out = Comparison {
        table: identity_checks(d, uid, chains_now),
        ..Comparison::default()
    };
    let there = match WalPosition::from_document(d.document()) {
        Ok(w) => w,
        Err(why) => {
            out.table.push(Check::note(
                "wal",
                format!("the checkpoint's WAL position is not used: {why}"),
            ));
            None
        }
    };
    let lin = match (&there, here) {
        (Some(t), Some(h)) => Some(lineage(t, h)),
        _ => None,
    };
    // No WAL position in the digest (taken by an earlier pg_worm), or another cluster: the
    // rows alone are compared.
    let usable = lin.as_ref().filter(|l| **l != Lineage::OtherCluster);
    let mut purged_since: Vec<String> = Vec::new();
    for dc in &d.chains {
        out.chains.extend(chain_findings(
            dc,
            chains_now,
            g.chain(dc.chain),
            &mut purged_since,
            usable,
        ));
    }
    if let Some(p) = previous {
        narrow_forks(&mut out.chains, p, g);
    }
    if let Some(t) = &there {
        let chain_problems = out.chains.iter().any(|f| f.check.status == Status::Problem);
        out.table
            .push(wal_check(t, here, lin.as_ref(), chain_problems));
    }
    out.table.push(root_check(d, g, &purged_since, usable));
    out.lineage = lin;
    out
}

/// The root of an RFC 9162 tree over leaves that come one at a time, in O(log n) memory:
/// the roots of the perfect subtrees the leaves so far make (a compact range), merged as a
/// binary counter carries. [`Frontier::root`] equals [`merkle_root`] of every leaf pushed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Perfect subtree roots, largest (leftmost) first: one per set bit of `size`.
    stack: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a leaf (its data, e.g. a row link).
    pub fn push(&mut self, leaf: &[u8]) {
        let mut h = crate::merkle::leaf_hash(leaf);
        let mut m = self.size;
        while m & 1 == 1 {
            match self.stack.pop() {
                Some(left) => h = crate::merkle::node_hash(&left, &h),
                None => break,
            }
            m >>= 1;
        }
        self.stack.push(h);
        self.size += 1;
    }

    /// Leaves pushed so far.
    pub fn size(&self) -> i64 {
        i64::try_from(self.size).unwrap_or(i64::MAX)
    }

    /// MTH of the leaves pushed so far (the empty tree's hash for none).
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(last) = it.next() else {
            return crate::merkle::empty_root();
        };
        it.fold(*last, |acc, left| crate::merkle::node_hash(left, &acc))
    }
}

/// What the comparison needs of one chain of the checkpoint, gathered from its rows as they
/// stream by: a few numbers and flags, not the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    /// The purge anchor in worm.anchors (seq, link; link None when unusable).
    pub anchor: Option<(i64, Option<Hash>)>,
    /// The highest seq of any row.
    pub newest: Option<i64>,
    /// Some row is at the checkpoint's head seq.
    pub at_head: bool,
    /// ... and one of them has the checkpoint's head link.
    pub head_held: bool,
    /// A row at the previous checkpoint's head has that checkpoint's head link.
    pub previous_held: bool,
    /// The rows the checkpoint covered (after its anchor, up to its head, with a valid link):
    /// how many, and the RFC 9162 root over their links.
    pub covered: i64,
    pub root: Hash,
}

impl Default for ChainSummary {
    fn default() -> Self {
        ChainSummary {
            anchor: None,
            newest: None,
            at_head: false,
            head_held: false,
            previous_held: false,
            covered: 0,
            root: crate::merkle::empty_root(),
        }
    }
}

/// Every chain's [`ChainSummary`], and for format version 1 the root over all covered rows
/// in (chain, seq) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gathered {
    chains: BTreeMap<i32, ChainSummary>,
    empty: ChainSummary,
    table_root: Hash,
    table_size: i64,
}

impl Gathered {
    /// Chain `c`'s summary (an empty chain's when it was not read).
    pub fn chain(&self, c: i32) -> &ChainSummary {
        self.chains.get(&c).unwrap_or(&self.empty)
    }

    /// How many rows the checkpoint covered are still there (with a valid link).
    pub fn covered(&self) -> i64 {
        self.table_size
    }
}

/// What the comparison needs of one chain, gathered from its rows as they come (ascending by
/// seq, rows with a NULL seq left out, as [`ChainState::rows`] holds them). Independent of the
/// other chains, so chains can be read in any order or at once; for a digest of format version
/// 1 it also keeps the chain's covered links (that format's root runs over all chains' links
/// in (chain, seq) order), see [`Gathered::from_chains`].
#[derive(Debug, Clone)]
pub struct ChainGather {
    chain: i32,
    head: (i64, Option<Hash>),
    anchor_seq: i64,
    previous_head: Option<(i64, Option<Hash>)>,
    summary: ChainSummary,
    tree: Frontier,
    keep_leaves: bool,
    leaves: Vec<Hash>,
}

impl ChainGather {
    /// Chain `c` of `d` (None when the digest does not list it: its rows are not needed),
    /// with its purge anchor now; `previous`: as for [`compare_gathered`].
    pub fn new(
        d: &Digest,
        previous: Option<&Digest>,
        c: i32,
        anchor: Option<(i64, Option<Hash>)>,
    ) -> Option<ChainGather> {
        let dc = d.chains.iter().find(|x| x.chain == c)?;
        let previous_head = previous
            .and_then(|p| p.chains.iter().find(|x| x.chain == c))
            .map(|pc| (pc.head_seq, pc.head_link));
        Some(ChainGather {
            chain: c,
            head: (dc.head_seq, dc.head_link),
            anchor_seq: dc.anchor_seq,
            previous_head,
            summary: ChainSummary {
                anchor,
                ..ChainSummary::default()
            },
            tree: Frontier::new(),
            keep_leaves: d.format_version < 2,
            leaves: Vec::new(),
        })
    }

    /// The next row: its seq and link (None when NULL or not 32 bytes). Returns the link when
    /// the checkpoint covered the row.
    pub fn row(&mut self, seq: i64, link: Option<Hash>) -> Option<Hash> {
        let s = &mut self.summary;
        s.newest = Some(s.newest.map_or(seq, |n| n.max(seq)));
        let (h, head_link) = self.head;
        if seq == h {
            s.at_head = true;
            if link.is_some() && link == head_link {
                s.head_held = true;
            }
        }
        if let Some((p, p_link)) = self.previous_head {
            if seq == p && link.is_some() && link == p_link {
                s.previous_held = true;
            }
        }
        let l = link.filter(|_| seq > self.anchor_seq && seq <= h)?;
        self.tree.push(&l);
        if self.keep_leaves {
            self.leaves.push(l);
        }
        Some(l)
    }

    pub fn chain(&self) -> i32 {
        self.chain
    }

    fn summary(mut self) -> ChainSummary {
        self.summary.covered = self.tree.size();
        self.summary.root = self.tree.root();
        self.summary
    }
}

/// Gathers what [`compare_gathered`] needs while each chain's rows stream by, chains in the
/// digest's order (0, 1, 2 ...; only those the table has): memory for the chains and O(log n)
/// hashes, not the rows (for format version 1 too: its table-wide root is folded as the
/// chains come in order).
pub struct Gather<'a> {
    d: &'a Digest,
    previous: Option<&'a Digest>,
    chains: BTreeMap<i32, ChainSummary>,
    table: Frontier,
    current: Option<ChainGather>,
}

impl<'a> Gather<'a> {
    /// `previous`: as for [`compare_gathered`].
    pub fn new(d: &'a Digest, previous: Option<&'a Digest>) -> Self {
        Gather {
            d,
            previous,
            chains: BTreeMap::new(),
            table: Frontier::new(),
            current: None,
        }
    }

    fn end_chain(&mut self) {
        if let Some(cur) = self.current.take() {
            self.chains.insert(cur.chain, cur.summary());
        }
    }

    /// Starts chain `c` (ending the one before), with its purge anchor. A chain the digest
    /// does not list is not needed: its rows are ignored.
    pub fn chain(&mut self, c: i32, anchor: Option<(i64, Option<Hash>)>) {
        self.end_chain();
        self.current = ChainGather::new(self.d, self.previous, c, anchor).map(|mut g| {
            g.keep_leaves = false;
            g
        });
    }

    /// The next row of the current chain: its seq and link (None when NULL or not 32 bytes).
    pub fn row(&mut self, seq: i64, link: Option<Hash>) {
        if let Some(l) = self.current.as_mut().and_then(|cur| cur.row(seq, link)) {
            self.table.push(&l);
        }
    }

    pub fn finish(mut self) -> Gathered {
        self.end_chain();
        Gathered {
            chains: self.chains,
            empty: ChainSummary::default(),
            table_root: self.table.root(),
            table_size: self.table.size(),
        }
    }
}

impl Gathered {
    /// From chains gathered each on its own ([`ChainGather`], in any order): the table-wide
    /// root of format version 1 is folded over their kept links in the digest's chain order.
    pub fn from_chains(d: &Digest, chains: Vec<ChainGather>) -> Gathered {
        let mut by_chain: BTreeMap<i32, ChainGather> =
            chains.into_iter().map(|g| (g.chain, g)).collect();
        let mut table = Frontier::new();
        let mut out = BTreeMap::new();
        let mut covered = 0i64;
        for dc in &d.chains {
            let Some(g) = by_chain.remove(&dc.chain) else {
                continue;
            };
            for l in &g.leaves {
                table.push(l);
            }
            let s = g.summary();
            covered += s.covered;
            out.insert(dc.chain, s);
        }
        let v1 = d.format_version < 2;
        Gathered {
            chains: out,
            empty: ChainSummary::default(),
            table_root: if v1 {
                table.root()
            } else {
                crate::merkle::empty_root()
            },
            table_size: if v1 { table.size() } else { covered },
        }
    }
}

/// [`Gather`] over chains held in memory.
pub fn gather_state(
    d: &Digest,
    previous: Option<&Digest>,
    state: &BTreeMap<i32, ChainState>,
) -> Gathered {
    let mut g = Gather::new(d, previous);
    for dc in &d.chains {
        if let Some(cs) = state.get(&dc.chain) {
            g.chain(dc.chain, cs.anchor);
            for (s, l) in &cs.rows {
                g.row(*s, *l);
            }
        }
    }
    g.finish()
}

#[cfg(test)]
#[path = "against_oracle.rs"]
mod oracle;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::parse_uuid;
    use crate::fixtures::{digest_json, UID};
    use crate::merkle_root;

    fn l(c: i32, s: i64) -> Hash {
        let mut h = [0u8; 32];
        h[0] = c as u8;
        h[1..9].copy_from_slice(&s.to_be_bytes());
        h
    }

    /// Two chains: chain 0 rows 1..=n0, chain 1 rows 1..=n1.
    fn state(n0: i64, n1: i64) -> BTreeMap<i32, ChainState> {
        let mut m = BTreeMap::new();
        for (c, n) in [(0, n0), (1, n1)] {
            m.insert(
                c,
                ChainState {
                    anchor: None,
                    rows: (1..=n).map(|s| (s, Some(l(c, s)))).collect(),
                },
            );
        }
        m
    }

    fn digest_of(n0: i64, n1: i64) -> Digest {
        let mut leaves = Vec::new();
        leaves.extend((1..=n0).map(|s| l(0, s)));
        leaves.extend((1..=n1).map(|s| l(1, s)));
        let head = |c, n| {
            if n == 0 {
                (0, None)
            } else {
                (n, Some(l(c, n)))
            }
        };
        Digest::parse(digest_json(
            9,
            &[head(0, n0), head(1, n1)],
            merkle_root(&leaves),
            n0 + n1,
        ))
        .expect("valid")
    }

    fn uid() -> [u8; 16] {
        parse_uuid(UID).expect("uuid")
    }

    #[test]
    fn same_table_and_grown_table_match() {
        let d = digest_of(12, 0);
        let c = compare(&d, &uid(), 2, &state(12, 0));
        assert!(c.exact(), "{c:#?}");
        // Rows inserted since do not matter.
        let c = compare(&d, &uid(), 2, &state(20, 3));
        assert!(c.exact(), "{c:#?}");
        assert_eq!(c.problems(), 0);
    }

    fn digest_v2_of(n0: i64, n1: i64) -> Digest {
        let chains: Vec<Vec<Hash>> = [(0, n0), (1, n1)]
            .iter()
            .map(|&(c, n)| (1..=n).map(|s| l(c, s)).collect())
            .collect();
        Digest::parse(crate::fixtures::digest_json_v2(9, &chains)).expect("valid")
    }

    #[test]
    fn per_chain_tree_matches_and_names_the_chain() {
        let d = digest_v2_of(12, 4);
        assert_eq!(d.format_version, 2);
        assert_eq!(d.merkle_size, 16);
        assert!(compare(&d, &uid(), 2, &state(12, 4)).exact());
        assert_eq!(compare(&d, &uid(), 2, &state(30, 9)).problems(), 0);
        // A row of chain 1 with another link (re-linked consistently up to the head).
        let mut s = state(12, 4);
        if let Some(cs) = s.get_mut(&1) {
            cs.rows[1].1 = Some([7; 32]);
        }
        let c = compare(&d, &uid(), 2, &s);
        let root = c
            .table
            .iter()
            .find(|x| x.check == "merkle_root")
            .expect("root check");
        assert_eq!(root.status, Status::Problem);
        assert!(
            root.detail.ends_with("(chain 1 differs)"),
            "{}",
            root.detail
        );
        // Chain 0 purged since (anchor 3): chain 1 is still compared with its chain root.
        let mut s = state(12, 4);
        if let Some(cs) = s.get_mut(&0) {
            cs.anchor = Some((3, Some(l(0, 3))));
            cs.rows.retain(|r| r.0 > 3);
        }
        let root_of = |s: &BTreeMap<i32, ChainState>| {
            compare(&d, &uid(), 2, s)
                .table
                .into_iter()
                .find(|x| x.check == "merkle_root")
                .expect("root check")
        };
        let r = root_of(&s);
        assert_eq!(r.status, Status::Ok, "{}", r.detail);
        assert!(
            r.detail.contains("of the 1 chain not purged since"),
            "{}",
            r.detail
        );
        if let Some(cs) = s.get_mut(&1) {
            cs.rows[2].1 = Some([7; 32]);
        }
        let r = root_of(&s);
        assert_eq!(r.status, Status::Problem, "{}", r.detail);
        assert!(
            r.detail.contains("of chain 1 no longer hash"),
            "{}",
            r.detail
        );
        // The v1 root over the same rows is not the v2 root.
        let v1 = digest_of(12, 4);
        assert_ne!(v1.merkle_root, d.merkle_root);
        // A chain's size altered: the digest still parses, its hash no longer recomputes.
        let mut j = crate::fixtures::digest_json_v2(9, &[vec![[1; 32]]]);
        j["checkpoint"]["chains"][0]["merkle_size"] = json!(2);
        assert!(!Digest::parse(j).expect("well-formed").hash_ok());
    }

    #[test]
    fn removed_tail_is_named() {
        let d = digest_of(12, 4);
        let c = compare(&d, &uid(), 2, &state(5, 4));
        assert_eq!(c.problems(), 2, "{c:#?}"); // the chain, and the root
        let f = &c.chains[0];
        assert_eq!(f.chain, 0);
        assert_eq!(f.first_bad_seq, Some(6));
        // A digest without a WAL position cannot tell a cut from a shorter branch of a fork.
        assert!(
            f.check.detail.starts_with(
                "chain 0 is shorter than its checkpoint: rows 6..12 are not here: removed (tail cut, rollback or older backup), or this server is on the shorter branch of a fork"
            ),
            "{}",
            f.check.detail
        );
        // An emptied chain.
        let c = compare(&d, &uid(), 2, &state(12, 0));
        assert!(
            c.chains[1].check.detail.contains("rows 1..4 are not here"),
            "{c:#?}"
        );
    }

    #[test]
    fn rewritten_chain_is_named() {
        let d = digest_of(12, 4);
        let mut s = state(12, 4);
        if let Some(cs) = s.get_mut(&1) {
            cs.rows[3].1 = Some([0xee; 32]);
        }
        let c = compare(&d, &uid(), 2, &s);
        let f = &c.chains[1];
        assert_eq!(f.check.status, Status::Problem);
        assert!(
            f.check.detail.starts_with(
                "row 4 differs from the checkpoint: chain 1 forked at or before row 4: it was rewritten or replaced, or"
            ),
            "{}",
            f.check.detail
        );
        // A change below the head is caught by the root only.
        let mut s = state(12, 4);
        if let Some(cs) = s.get_mut(&0) {
            cs.rows[2].1 = Some([0xee; 32]);
        }
        let c = compare(&d, &uid(), 2, &s);
        assert_eq!(c.problems(), 1);
        assert!(c
            .all_checks()
            .last()
            .is_some_and(|x| x.status == Status::Problem));
    }

    #[test]
    fn purged_past_the_checkpoint_is_not_a_problem() {
        let d = digest_of(12, 4);
        let mut s = state(12, 4);
        if let Some(cs) = s.get_mut(&1) {
            cs.anchor = Some((6, Some([1; 32])));
            cs.rows.clear();
            cs.rows.push((7, Some([2; 32])));
        }
        let c = compare(&d, &uid(), 2, &s);
        assert_eq!(c.problems(), 0, "{c:#?}");
        assert!(!c.exact());
        assert!(c.chains[1]
            .check
            .detail
            .contains("purged past the checkpoint"));
        let root = c
            .table
            .iter()
            .find(|x| x.check == "merkle_root")
            .expect("root check");
        assert_eq!(root.status, Status::Note);
        assert!(
            root.detail.contains("chain 1 (anchor 0 -> 6)"),
            "{}",
            root.detail
        );
        // Purged exactly up to the head: the anchor must carry the head link.
        let mut s = state(12, 4);
        if let Some(cs) = s.get_mut(&1) {
            cs.anchor = Some((4, Some(l(1, 4))));
            cs.rows.clear();
        }
        let c = compare(&d, &uid(), 2, &s);
        assert_eq!(c.problems(), 0, "{c:#?}");
        if let Some(cs) = s.get_mut(&1) {
            cs.anchor = Some((4, Some([9; 32])));
        }
        assert_eq!(compare(&d, &uid(), 2, &s).problems(), 1);
    }

    #[test]
    fn other_table_and_chain_count() {
        let d = digest_of(1, 1);
        let c = compare(&d, &[0; 16], 2, &state(1, 1));
        assert_eq!(c.problems(), 1);
        assert!(c.table[0].detail.contains("another table"));
        let c = compare(&d, &uid(), 1, &state(1, 1));
        assert!(c.problems() >= 2, "{c:#?}");
    }

    #[test]
    fn missing_head_row_inside_the_chain() {
        let d = digest_of(5, 0);
        let mut s = state(8, 0);
        if let Some(cs) = s.get_mut(&0) {
            cs.rows.retain(|(x, _)| *x != 5);
        }
        let c = compare(&d, &uid(), 2, &s);
        assert_eq!(
            c.chains[0].check.detail,
            "row 5, the head of chain 0 at the checkpoint, is missing"
        );
    }

    const SYS: u64 = 7_312_345_678_901_234_567;

    fn pos(timeline: u32, lsn: u64, history: &[(u32, u64)]) -> WalPosition {
        WalPosition {
            system_identifier: SYS,
            timeline,
            lsn,
            history: history.to_vec(),
            in_recovery: false,
        }
    }

    fn with_wal(d: &Digest, w: &WalPosition) -> Digest {
        let mut whole = d.whole.clone();
        whole["checkpoint"]["wal"] = w.to_json();
        Digest::parse(whole).expect("valid")
    }

    #[test]
    fn lsn_and_history_file() {
        assert_eq!(parse_lsn("0/3000148"), Some(0x0300_0148));
        assert_eq!(parse_lsn("1A/FF"), Some((0x1a << 32) | 0xff));
        assert_eq!(format_lsn((0x1a << 32) | 0xff), "1A/FF");
        assert_eq!(parse_lsn("3000148"), None);
        assert_eq!(parse_lsn("0/xyz"), None);
        let text =
            "1\t0/3000060\tno recovery target specified\n\n# c\n2\t0/5000000\tat restore point\n";
        assert_eq!(
            parse_history_file(text),
            Some(vec![(1, 0x0300_0060), (2, 0x0500_0000)])
        );
        assert_eq!(parse_history_file("x\t0/1\n"), None);
        let w = pos(2, 0x0500_0000, &[(1, 0x0300_0060)]);
        let doc = json!({ "wal": w.to_json() });
        assert_eq!(WalPosition::from_document(&doc), Ok(Some(w)));
        assert_eq!(WalPosition::from_document(&json!({})), Ok(None));
        assert!(WalPosition::from_document(&json!({"wal": {"timeline": 1}})).is_err());
    }

    #[test]
    fn lineage_of_positions() {
        let p1 = |lsn| pos(1, lsn, &[]);
        let promoted = |lsn| pos(2, lsn, &[(1, 100)]);
        // Same timeline: behind or contained.
        assert_eq!(lineage(&p1(50), &p1(60)), Lineage::Contained);
        assert_eq!(
            lineage(&p1(70), &p1(60)),
            Lineage::Behind { standby: false }
        );
        // Taken before the promotion: in the promoted server's history.
        assert_eq!(lineage(&p1(90), &promoted(500)), Lineage::Contained);
        // The old primary went on after the promotion: a fork, this server left timeline 1.
        assert_eq!(
            lineage(&p1(150), &promoted(500)),
            Lineage::Forked {
                timeline: 1,
                at: 100,
                side: ForkSide::Here
            }
        );
        // The other way round: the checkpoint's server was promoted, this one went on.
        assert_eq!(
            lineage(&promoted(500), &p1(150)),
            Lineage::Forked {
                timeline: 1,
                at: 100,
                side: ForkSide::There
            }
        );
        // A standby of timeline 1 that has not reached the switch yet: behind.
        let mut standby = p1(90);
        standby.in_recovery = true;
        assert_eq!(
            lineage(&promoted(500), &standby),
            Lineage::Behind { standby: true }
        );
        // Two standbys promoted at different points, or to different timelines at one point.
        assert_eq!(
            lineage(&pos(2, 500, &[(1, 100)]), &pos(2, 500, &[(1, 120)])),
            Lineage::Forked {
                timeline: 1,
                at: 100,
                side: ForkSide::Both
            }
        );
        assert_eq!(
            lineage(&pos(2, 500, &[(1, 100)]), &pos(3, 500, &[(1, 100)])),
            Lineage::Forked {
                timeline: 1,
                at: 100,
                side: ForkSide::Both
            }
        );
        // Another cluster.
        let mut other = p1(10);
        other.system_identifier = 1;
        assert_eq!(lineage(&other, &p1(60)), Lineage::OtherCluster);
    }

    #[test]
    fn fork_is_named_with_wal_positions() {
        // The checkpoint's server (old primary, timeline 1) had 12 and 4 rows; this server was
        // promoted at LSN 100 and holds 5 rows of chain 0 and another row 4 of chain 1.
        let d = with_wal(&digest_of(12, 4), &pos(1, 900, &[]));
        let here = pos(2, 500, &[(1, 100)]);
        let mut s = state(5, 4);
        if let Some(cs) = s.get_mut(&1) {
            cs.rows[3].1 = Some([0xee; 32]);
        }
        let c = compare_at(&d, &uid(), 2, &s, Some(&here), None);
        assert_eq!(c.chains[0].first_bad_seq, Some(6));
        assert_eq!(
            c.chains[0].check.detail,
            "chain 0 forked: this branch ends at row 5, the checkpoint's branch had rows up to 12: rows 6..12 of the checkpoint are on the other branch only (the histories diverge from timeline 1, LSN 0/64 on; a split brain after failover)"
        );
        assert_eq!(c.chains[1].first_bad_seq, Some(4));
        assert_eq!(
            c.chains[1].check.detail,
            "chain 1 forked: row 4 is another row than the checkpoint's head (the histories diverge from timeline 1, LSN 0/64 on; a split brain after failover): the branches differ from row 4 or earlier"
        );
        let wal = c
            .table
            .iter()
            .find(|x| x.check == "wal")
            .expect("wal check");
        assert_eq!(wal.status, Status::Problem);
        assert!(
            wal.detail.starts_with("fork: this server and the checkpoint's server have different histories from timeline 1, LSN 0/64 on (this server left timeline 1 there"),
            "{}",
            wal.detail
        );
        assert!(!c.all_checks().iter().any(|x| x.detail.contains("tail cut")));
        // The ledger entry the digest names is the other branch's.
        let l = c.ledger_finding(Check::problem(
            "ledger",
            "entry 9 of this database's ledger is another entry (hash 00…, the checkpoint's is 11…): the ledger was rewritten or replaced since the checkpoint",
        ));
        assert_eq!(
            l.detail,
            "entry 9 of this database's ledger is another entry (hash 00…, the checkpoint's is 11…): the ledgers forked with the servers' histories (the checkpoint is on the other branch; see the fork finding)"
        );
        let same = Check::problem("ledger", "x: the ledger was rolled back");
        assert_eq!(
            compare(&d, &uid(), 2, &s).ledger_finding(same.clone()),
            same
        );
    }

    #[test]
    fn cut_behind_and_unreadable_with_wal_positions() {
        let d = with_wal(&digest_of(12, 4), &pos(1, 900, &[]));
        // In this server's history: a cut, worded as before.
        let c = compare_at(&d, &uid(), 2, &state(5, 4), Some(&pos(1, 1000, &[])), None);
        assert_eq!(
            c.chains[0].check.detail,
            "chain 0 is shorter than its checkpoint: rows 6..12 removed (tail cut, rollback or older backup)"
        );
        assert!(c
            .table
            .iter()
            .any(|x| x.check == "wal" && x.status == Status::Ok));
        // A standby that has not replayed it yet.
        let mut standby = pos(1, 800, &[]);
        standby.in_recovery = true;
        let c = compare_at(&d, &uid(), 2, &state(5, 4), Some(&standby), None);
        assert_eq!(
            c.chains[0].check.detail,
            "chain 0: rows 6..12 of the checkpoint are not here yet: not yet replayed (this server's WAL has not reached the checkpoint's position)"
        );
        let wal = c
            .table
            .iter()
            .find(|x| x.check == "wal")
            .expect("wal check");
        assert_eq!(wal.status, Status::Problem);
        assert!(
            wal.detail
                .starts_with("this standby (timeline 1, LSN 0/320) has not reached"),
            "{}",
            wal.detail
        );
        // A primary behind the checkpoint: an older copy of the data directory was started.
        let c = compare_at(&d, &uid(), 2, &state(5, 4), Some(&pos(1, 800, &[])), None);
        assert_eq!(
            c.chains[0].check.detail,
            "chain 0 is shorter than its checkpoint: rows 6..12 removed (rollback: this server's WAL is behind the checkpoint's position, an older copy of the data directory was started)"
        );
        assert!(c
            .table
            .iter()
            .any(|x| x.check == "wal" && x.detail.starts_with("rollback: this server")));
        // Behind but every head already here: only a note.
        let c = compare_at(&d, &uid(), 2, &state(12, 4), Some(&standby), None);
        assert_eq!(c.problems(), 0, "{c:#?}");
        // Unreadable here: a note, and the rows-only wording.
        let c = compare_at(&d, &uid(), 2, &state(12, 4), None, None);
        assert_eq!(c.problems(), 0);
        assert!(c
            .table
            .iter()
            .any(|x| x.check == "wal" && x.status == Status::Note));
        // Another cluster (pg_upgrade): a note, rows compared.
        let mut other = pos(1, 5, &[]);
        other.system_identifier = 9;
        let c = compare_at(&d, &uid(), 2, &state(12, 4), Some(&other), None);
        assert!(c.exact() || c.problems() == 0, "{c:#?}");
        assert!(c
            .table
            .iter()
            .any(|x| x.check == "wal" && x.detail.contains("another cluster")));
    }

    #[test]
    fn a_checkpoint_both_ledgers_hold_narrows_the_fork() {
        // The previous checkpoint (ledger entry 9 of the fixture) had heads 3 and 2.
        let prev = digest_of(3, 2);
        let stored = LedgerEntry {
            seq: prev.entry.seq,
            document: prev.document().clone(),
            prev: prev.entry.prev.to_vec(),
            hash: prev.entry.hash.to_vec(),
        };
        let mut whole = with_wal(&digest_of(12, 4), &pos(1, 900, &[])).whole;
        whole["checkpoint"]["previous_checkpoint"] =
            json!({"ledger_seq": prev.entry.seq, "hash": hex::encode(prev.entry.hash)});
        let d = Digest::parse(whole).expect("valid");
        assert_eq!(previous_checkpoint_seq(&d), Some(prev.entry.seq));
        let shared = shared_previous(&d, Some(&stored)).expect("the same entry");
        // Another entry at that seq (the other branch's) is not shared.
        let mut other = stored.clone();
        other.hash = vec![7; 32];
        assert!(shared_previous(&d, Some(&other)).is_none());
        assert!(shared_previous(&d, None).is_none());

        let here = pos(2, 500, &[(1, 100)]);
        let mut s = state(5, 4);
        if let Some(cs) = s.get_mut(&1) {
            cs.rows[3].1 = Some([0xee; 32]);
        }
        let c = compare_at(&d, &uid(), 2, &s, Some(&here), Some(&shared));
        assert_eq!(c.chains[0].first_bad_seq, Some(4));
        assert!(
            c.chains[0].check.detail.ends_with(
                "; rows up to 3 are on both branches (in the previous checkpoint, ledger entry 9, which both ledgers hold), so they part between rows 4 and 6"
            ),
            "{}",
            c.chains[0].check.detail
        );
        assert_eq!(c.chains[1].first_bad_seq, Some(3));
        assert_eq!(
            c.chains[1].check.detail,
            "chain 1 forked: row 4 is another row than the checkpoint's head (the histories diverge from timeline 1, LSN 0/64 on; a split brain after failover): the branches part between rows 3 and 4 (rows up to 2 are in the previous checkpoint, ledger entry 9, which both ledgers hold)"
        );
        // A previous head this table no longer holds with its link narrows nothing.
        let mut s2 = s.clone();
        if let Some(cs) = s2.get_mut(&0) {
            cs.rows[2].1 = Some([0xdd; 32]);
        }
        let c = compare_at(&d, &uid(), 2, &s2, Some(&here), Some(&shared));
        assert_eq!(c.chains[0].first_bad_seq, Some(6));
    }

    #[test]
    fn frontier_root_is_the_merkle_root() {
        let mut f = Frontier::new();
        let mut leaves: Vec<Hash> = Vec::new();
        assert_eq!(f.root(), merkle_root::<Hash>(&[]));
        for i in 0..700u32 {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            f.push(&h);
            leaves.push(h);
            assert_eq!(f.root(), merkle_root(&leaves), "{} leaves", leaves.len());
        }
        assert_eq!(f.size(), 700);
    }

    /// A table of up to three chains, a checkpoint of it (format 1 or 2, a purge anchor
    /// perhaps, a WAL position perhaps), then tamperings, purges and growth, and perhaps a
    /// previous checkpoint both ledgers hold: the streaming comparison says exactly what the
    /// in-memory one (kept verbatim in `oracle`) says.
    mod streaming_matches_the_oracle {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Edit {
            Relink(usize, usize, u8),
            Remove(usize, usize),
            Duplicate(usize, usize, u8),
            NullLink(usize, usize),
            Append(usize, usize),
            Purge(usize, usize),
            AnchorRelink(usize),
            AnchorBack(usize),
        }

        fn edit() -> impl Strategy<Value = Edit> {
            prop_oneof![
                (0..3usize, 0..40usize, any::<u8>()).prop_map(|(c, i, b)| Edit::Relink(c, i, b)),
                (0..3usize, 0..40usize).prop_map(|(c, i)| Edit::Remove(c, i)),
                (0..3usize, 0..40usize, any::<u8>()).prop_map(|(c, i, b)| Edit::Duplicate(c, i, b)),
                (0..3usize, 0..40usize).prop_map(|(c, i)| Edit::NullLink(c, i)),
                (0..3usize, 0..12usize).prop_map(|(c, n)| Edit::Append(c, n)),
                (0..3usize, 0..40usize).prop_map(|(c, n)| Edit::Purge(c, n)),
                (0..3usize).prop_map(Edit::AnchorRelink),
                (0..3usize).prop_map(Edit::AnchorBack),
            ]
        }

        fn apply(s: &mut BTreeMap<i32, ChainState>, e: &Edit) {
            let c = match e {
                Edit::Relink(c, ..)
                | Edit::Remove(c, _)
                | Edit::Duplicate(c, ..)
                | Edit::NullLink(c, _)
                | Edit::Append(c, _)
                | Edit::Purge(c, _)
                | Edit::AnchorRelink(c)
                | Edit::AnchorBack(c) => *c,
            };
            let Some(cs) = s.get_mut(&(c as i32)) else {
                return;
            };
            let n = cs.rows.len();
            match *e {
                Edit::Relink(_, i, b) if n > 0 => cs.rows[i % n].1 = Some([b; 32]),
                Edit::Remove(_, i) if n > 0 => {
                    cs.rows.remove(i % n);
                }
                Edit::Duplicate(_, i, b) if n > 0 => {
                    let seq = cs.rows[i % n].0;
                    cs.rows.insert(i % n + 1, (seq, Some([b; 32])));
                }
                Edit::NullLink(_, i) if n > 0 => cs.rows[i % n].1 = None,
                Edit::Append(c, k) => {
                    let last = cs.rows.iter().map(|r| r.0).max().unwrap_or(0);
                    for s in last + 1..=last + k as i64 {
                        cs.rows.push((s, Some(l(c as i32, s))));
                    }
                }
                Edit::Purge(_, k) => {
                    let (lo, hi) = (
                        cs.rows.iter().map(|r| r.0).min().unwrap_or(0),
                        cs.rows.iter().map(|r| r.0).max().unwrap_or(0),
                    );
                    let upto = (lo + k as i64).min(hi);
                    let link = cs.rows.iter().find(|r| r.0 == upto).and_then(|r| r.1);
                    cs.rows.retain(|r| r.0 > upto);
                    cs.anchor = Some((upto, link));
                }
                Edit::AnchorRelink(_) => {
                    if let Some(a) = cs.anchor.as_mut() {
                        a.1 = Some([0x5a; 32]);
                    }
                }
                Edit::AnchorBack(_) => {
                    if let Some(a) = cs.anchor.as_mut() {
                        a.0 -= 1;
                    }
                }
                _ => {}
            }
        }

        /// The digest the server would take of `s` (format 1 or 2), with a WAL position.
        fn digest_from(
            s: &BTreeMap<i32, ChainState>,
            v2: bool,
            wal: Option<&WalPosition>,
            seq: i64,
        ) -> Option<Digest> {
            let heads = heads(s);
            let leaves: Vec<(i32, i64, Hash)> = surviving_leaves(s);
            let mut whole = if v2 {
                let chains: Vec<Vec<Hash>> = s
                    .keys()
                    .map(|c| leaves.iter().filter(|x| x.0 == *c).map(|x| x.2).collect())
                    .collect();
                crate::fixtures::digest_json_v2(seq, &chains)
            } else {
                let hs: Vec<(i64, Option<Hash>)> =
                    heads.iter().map(|h| (h.head_seq, h.head_link)).collect();
                let links: Vec<Hash> = leaves.iter().map(|x| x.2).collect();
                digest_json(seq, &hs, merkle_root(&links), links.len() as i64)
            };
            // The anchors as they were.
            for (i, h) in heads.iter().enumerate() {
                whole["checkpoint"]["chains"][i]["anchor_seq"] = json!(h.anchor_seq);
                whole["checkpoint"]["chains"][i]["anchor_link"] =
                    json!(h.anchor_link.map(hex::encode));
            }
            if let Some(w) = wal {
                whole["checkpoint"]["wal"] = w.to_json();
            }
            Digest::parse(whole).ok()
        }

        fn start(sizes: &[i64]) -> BTreeMap<i32, ChainState> {
            sizes
                .iter()
                .enumerate()
                .map(|(c, n)| {
                    let c = c as i32;
                    (
                        c,
                        ChainState {
                            anchor: None,
                            rows: (1..=*n).map(|s| (s, Some(l(c, s)))).collect(),
                        },
                    )
                })
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn same_findings(
                sizes in proptest::collection::vec(0i64..30, 1..4),
                v2 in any::<bool>(),
                before in proptest::collection::vec(edit(), 0..3),
                after in proptest::collection::vec(edit(), 0..5),
                wal in 0..4u8,
                with_previous in any::<bool>(),
                chains_delta in -1i32..2,
            ) {
                let mut s = start(&sizes);
                let prev_state = s.clone();
                for e in &before { apply(&mut s, e); }
                s.values_mut().for_each(|cs| cs.rows.sort_by_key(|r| r.0));
                let there = pos(1, 900, &[]);
                let d = digest_from(&s, v2, (wal > 0).then_some(&there), 9);
                prop_assume!(d.is_some());
                let d = d.unwrap_or_else(|| unreachable!());
                let previous = if with_previous { digest_from(&prev_state, v2, None, 5) } else { None };
                for e in &after { apply(&mut s, e); }
                s.values_mut().for_each(|cs| cs.rows.sort_by_key(|r| r.0));
                let here = match wal {
                    1 => Some(pos(1, 1000, &[])),
                    2 => Some(pos(2, 500, &[(1, 100)])),
                    3 => Some(pos(1, 800, &[])),
                    _ => None,
                };
                let chains_now = sizes.len() as i32 + chains_delta;
                let new = compare_at(&d, &uid(), chains_now, &s, here.as_ref(), previous.as_ref());
                let old = oracle::compare_at(&d, &uid(), chains_now, &s, here.as_ref(), previous.as_ref());
                prop_assert_eq!(&new, &old);
                // Chains gathered each on their own, in reverse order (as parallel readers finish).
                let each: Vec<ChainGather> = d
                    .chains
                    .iter()
                    .rev()
                    .filter_map(|dc| {
                        let cs = s.get(&dc.chain)?;
                        let mut g = ChainGather::new(&d, previous.as_ref(), dc.chain, cs.anchor)?;
                        for (q, l) in &cs.rows {
                            g.row(*q, *l);
                        }
                        Some(g)
                    })
                    .collect();
                let g = Gathered::from_chains(&d, each);
                let by_chains = compare_gathered(&d, &uid(), chains_now, &g, here.as_ref(), previous.as_ref());
                prop_assert_eq!(&by_chains, &old);
                prop_assert_eq!(gather_state(&d, previous.as_ref(), &s).covered(), oracle::covered_leaves(&d, &s).len() as i64);
            }
        }
    }
}
