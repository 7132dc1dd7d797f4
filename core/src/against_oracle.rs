//! The comparison of a table with a checkpoint as it was before it streamed (every row's
//! seq and link of every chain in memory, [`ChainState`]): kept verbatim as the oracle that the
//! streaming comparison ([`super::compare_gathered`]) is tested against.

#![allow(dead_code)]

use super::*;
use crate::merkle_root;

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

/// The row at the checkpoint's head: still there, with the checkpoint's link.
fn head_finding(
    dc: &DigestChain,
    cs: &ChainState,
    a_now: i64,
    lineage: Option<&Lineage>,
) -> ChainFinding {
    let (c, h) = (dc.chain, dc.head_seq);
    let at_head: Vec<&Option<Hash>> = cs
        .rows
        .iter()
        .filter(|(s, _)| *s == h)
        .map(|(_, l)| l)
        .collect();
    if at_head.is_empty() {
        let newest = cs
            .rows
            .iter()
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(a_now)
            .max(a_now);
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
    if at_head.iter().any(|l| l.is_some() && **l == dc.head_link) {
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
    cs: &ChainState,
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
    state: &BTreeMap<i32, ChainState>,
    purged_since: &[String],
    lineage: Option<&Lineage>,
) -> Check {
    if !purged_since.is_empty() && d.format_version >= 2 {
        return unpurged_chain_roots(d, state, purged_since);
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
    let covered = covered_leaves(d, state);
    let n = covered.len() as i64;
    let (root, differ) = if d.format_version >= 2 {
        per_chain_root(d, &covered)
    } else {
        let leaves: Vec<Hash> = covered.iter().map(|l| l.2).collect();
        (merkle_root(&leaves), String::new())
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
fn unpurged_chain_roots(
    d: &Digest,
    state: &BTreeMap<i32, ChainState>,
    purged_since: &[String],
) -> Check {
    let covered = covered_leaves(d, state);
    let mut differ = Vec::new();
    let (mut chains, mut rows) = (0, 0i64);
    for dc in &d.chains {
        let purged = state
            .get(&dc.chain)
            .and_then(|cs| cs.anchor)
            .is_some_and(|a| a.0 > dc.anchor_seq);
        if purged {
            continue;
        }
        let links: Vec<Hash> = covered
            .iter()
            .filter(|l| l.0 == dc.chain)
            .map(|l| l.2)
            .collect();
        chains += 1;
        rows += links.len() as i64;
        if Some((links.len() as i64, merkle_root(&links))) != dc.tree {
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
fn per_chain_root(d: &Digest, covered: &[(i32, i64, Hash)]) -> (Hash, String) {
    let mut trees = Vec::with_capacity(d.chains.len());
    let mut differ = Vec::new();
    for dc in &d.chains {
        let links: Vec<Hash> = covered
            .iter()
            .filter(|l| l.0 == dc.chain)
            .map(|l| l.2)
            .collect();
        let t = (links.len() as i64, merkle_root(&links));
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

/// Narrows the forked chains with a checkpoint both histories hold: rows up to its head are
/// on both branches (when the table still holds that head with its link), so the branches
/// part after it.
fn narrow_forks(chains: &mut [ChainFinding], previous: &Digest, state: &BTreeMap<i32, ChainState>) {
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
        let held = state.get(&c).is_some_and(|cs| {
            cs.rows
                .iter()
                .any(|(s, l)| *s == p && l.is_some() && *l == pc.head_link)
        });
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
    let empty = ChainState::default();
    let mut purged_since: Vec<String> = Vec::new();
    for dc in &d.chains {
        let cs = state.get(&dc.chain).unwrap_or(&empty);
        out.chains.extend(chain_findings(
            dc,
            chains_now,
            cs,
            &mut purged_since,
            usable,
        ));
    }
    if let Some(p) = previous {
        narrow_forks(&mut out.chains, p, state);
    }
    if let Some(t) = &there {
        let chain_problems = out.chains.iter().any(|f| f.check.status == Status::Problem);
        out.table
            .push(wal_check(t, here, lin.as_ref(), chain_problems));
    }
    out.table.push(root_check(d, state, &purged_since, usable));
    out.lineage = lin;
    out
}
