//! Parallel `worm.verify`: the chains of one table read by the verifying
//! backend and parallel workers together.
//!
//! PostgreSQL's parallel infrastructure, as parallel query uses it: the
//! backend enters parallel mode, creates a parallel context whose workers run
//! [`pg_worm_verify_worker`], and puts in its dynamic shared memory what the
//! workers need (the table, its chain index, uid, chain count and purge
//! anchors), a counter handing out chains one at a time, and one result slot
//! per chain. The workers share the backend's snapshot and transaction, so
//! they see exactly the rows it sees. Each participant takes the next chain
//! from the counter and reads it through the chain index into a streaming
//! verifier, as a serial verification does ([`Streamed::chain`]), then writes
//! the chain's report and what the reading collected besides (rows per chain
//! number, stray rows, rows set aside) into the chain's slot. The backend
//! also counts the table's rows (the check that the index shows every row)
//! while the workers start, then takes chains itself (unless
//! `parallel_leader_participation` is off). When every worker has finished,
//! the results are put together in chain order, so the report is the serial
//! one, row for row and word for word. A result too big for its slot, or a
//! chain no worker reported, is read again by the backend.
//!
//! Serial when: `worm.verify_parallel_workers` is 0 (or, at -1, the default,
//! `max_parallel_workers_per_gather` is), the table has fewer than two chains
//! or fewer pages than `min_parallel_table_scan_size`, or the call is made in
//! parallel mode already. No worker started: the backend reads every chain.
//! A DEBUG1 message says how many workers were launched.

use super::{FirstPass, Misfit, Progress, Streamed, PARALLEL_WORKERS};
use crate::error::{OrRaise, WormError};
use crate::insert::encode;
use crate::pg;
use pg_worm_core::{table_verify::StrayCount, Anchor, AnchorEntry, ChainRow, RowRecord};
use pgrx::pg_sys;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

/// Keys of the parallel context's table of contents.
const KEY_HEADER: u64 = 0x7077_6f72_6d00_0001;
const KEY_ANCHORS: u64 = 0x7077_6f72_6d00_0002;
const KEY_SLOTS: u64 = 0x7077_6f72_6d00_0003;

/// Bytes of one chain's result slot (state, length, then the result).
const SLOT_BYTES: usize = 4096;
const SLOT_HEADER: usize = 8;

/// Slot states.
const SLOT_EMPTY: u32 = 0;
const SLOT_DONE: u32 = 1;
const SLOT_TOO_BIG: u32 = 2;

/// What every participant reads, in shared memory.
#[repr(C)]
struct Header {
    relid: pg_sys::Oid,
    index: pg_sys::Oid,
    chains: i32,
    anchors_len: u32,
    uid: [u8; 16],
    /// The next chain to read.
    next_chain: AtomicU32,
    /// Chains read by workers.
    worker_chains: AtomicU32,
    /// Rows verified by every participant (for the leader's progress NOTICEs).
    rows: AtomicI64,
}

/// How many parallel workers a verification of `rel` with `chains` chains
/// asks for (0: serial).
pub(super) fn planned_workers(rel: pg_sys::Relation, chains: i32) -> i32 {
    // SAFETY: reads of backend-global settings and state.
    let (in_parallel, per_gather, min_pages, leader) = unsafe {
        (
            pg_sys::IsInParallelMode() || pg_sys::ParallelWorkerNumber >= 0,
            pg_sys::max_parallel_workers_per_gather,
            pg_sys::min_parallel_table_scan_size,
            pg_sys::parallel_leader_participation,
        )
    };
    if in_parallel || chains < 2 {
        return 0;
    }
    let asked = match PARALLEL_WORKERS.get() {
        n if n < 0 => per_gather,
        n => n,
    };
    // The leader takes chains too: more workers than chains would idle.
    let useful = if leader { chains - 1 } else { chains };
    let n = asked.min(useful).max(0);
    if n == 0 {
        return 0;
    }
    // SAFETY: `rel` is an open table (the caller's).
    let pages =
        unsafe { pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM) };
    if i64::from(pages) < i64::from(min_pages) {
        return 0;
    }
    n
}

/// Space for `len` bytes in the parallel context's segment (shm_toc_estimate_chunk).
fn estimate_chunk(pcxt: &mut pg_sys::ParallelContext, len: usize) {
    // BUFFERALIGN, as shm_toc_estimate_chunk rounds.
    let aligned = len.div_ceil(pg_sys::ALIGNOF_BUFFER as usize) * pg_sys::ALIGNOF_BUFFER as usize;
    pcxt.estimator.space_for_chunks += aligned;
    pcxt.estimator.number_of_keys += 1;
}

/// The first reading of every chain with `nworkers` parallel workers: the
/// table's row count, the chains' reports in chain order, what the reading
/// collected besides, as [`Streamed::first_pass`] returns them.
///
/// # Safety
/// As for [`Streamed::verify`].
pub(super) unsafe fn first_pass(
    t: &Streamed<'_>,
    nworkers: i32,
    every: i64,
) -> (i64, Vec<ChainRow>, FirstPass) {
    let n = usize::try_from(t.chains).unwrap_or(0);
    let anchors = encode_anchors(t.anchors);
    // SAFETY: the parallel context's life: created in parallel mode, its
    // segment sized by the estimates before InitializeParallelDSM and filled
    // before the workers are launched; the workers are waited for before the
    // results are read and the context destroyed. An ERROR on the way aborts
    // the transaction, which destroys the context and leaves parallel mode.
    let (in_table_rows, mut results, launched, by_workers, rows_so_far) = unsafe {
        pg_sys::EnterParallelMode();
        let pcxt = pg_sys::CreateParallelContext(
            c"pg_worm".as_ptr(),
            c"pg_worm_verify_worker".as_ptr(),
            nworkers,
        );
        estimate_chunk(&mut *pcxt, std::mem::size_of::<Header>());
        estimate_chunk(&mut *pcxt, anchors.len().max(1));
        estimate_chunk(&mut *pcxt, n * SLOT_BYTES);
        pg_sys::InitializeParallelDSM(pcxt);
        let toc = (*pcxt).toc;
        let header = pg_sys::shm_toc_allocate(toc, std::mem::size_of::<Header>()) as *mut Header;
        header.write(Header {
            relid: (*t.rel).rd_id,
            index: t.index,
            chains: t.chains,
            anchors_len: u32::try_from(anchors.len()).unwrap_or(u32::MAX),
            uid: *t.uid,
            next_chain: AtomicU32::new(0),
            worker_chains: AtomicU32::new(0),
            rows: AtomicI64::new(0),
        });
        pg_sys::shm_toc_insert(toc, KEY_HEADER, header.cast());
        let anchors_at = pg_sys::shm_toc_allocate(toc, anchors.len().max(1)) as *mut u8;
        std::ptr::copy_nonoverlapping(anchors.as_ptr(), anchors_at, anchors.len());
        pg_sys::shm_toc_insert(toc, KEY_ANCHORS, anchors_at.cast());
        let slots = pg_sys::shm_toc_allocate(toc, n * SLOT_BYTES) as *mut u8;
        std::ptr::write_bytes(slots, 0, n * SLOT_BYTES);
        pg_sys::shm_toc_insert(toc, KEY_SLOTS, slots.cast());
        pg_sys::LaunchParallelWorkers(pcxt);
        let launched = (*pcxt).nworkers_launched;
        let header = &*header;

        // While the workers start: the table's row count.
        let in_table_rows = t.count_all();
        let mut results: Vec<Option<(ChainRow, FirstPass)>> = (0..n).map(|_| None).collect();
        let mut progress = Progress::new(every, t.table, t.chains);
        progress.shared = Some(&header.rows);
        if launched == 0 || pg_sys::parallel_leader_participation {
            take_chains(t, header, &mut progress, |c, r| {
                if let Some(slot) = results.get_mut(c) {
                    *slot = Some(r);
                }
            });
        }
        let reported = progress.reported;
        pg_sys::WaitForParallelWorkersToFinish(pcxt);
        for (c, result) in results.iter_mut().enumerate() {
            if result.is_none() {
                *result = read_slot(slots.add(c * SLOT_BYTES), t.chains);
            }
        }
        let by_workers = header.worker_chains.load(Ordering::Acquire);
        let rows_so_far = (header.rows.load(Ordering::Relaxed), reported);
        pg_sys::DestroyParallelContext(pcxt);
        pg_sys::ExitParallelMode();
        (in_table_rows, results, launched, by_workers, rows_so_far)
    };
    pgrx::debug1!(
        "pg_worm: verify of {} with {launched} parallel worker(s) of {nworkers} planned",
        t.table
    );
    pgrx::debug2!(
        "pg_worm: verify of {}: {by_workers} of {} chains read by the workers",
        t.table,
        t.chains
    );
    // Chains no participant reported (a result too big for its slot): here.
    let mut progress = Progress::new(every, t.table, t.chains);
    (progress.rows, progress.reported) = rows_so_far;
    let mut first = FirstPass::new(t.chains);
    let mut rows = Vec::with_capacity(n);
    for (c, result) in results.iter_mut().enumerate() {
        let (row, pass) = match result.take() {
            Some(r) => r,
            None => {
                let c = i32::try_from(c).unwrap_or(i32::MAX);
                let mut pass = FirstPass::new(t.chains);
                // SAFETY: the caller's contract.
                let row = unsafe { t.chain(c, Some(&mut pass), &[], &mut progress) };
                (row, pass)
            }
        };
        first.merge(pass);
        rows.push(row);
    }
    (in_table_rows, rows, first)
}

/// Reads chains handed out by the shared counter until none is left,
/// giving each chain's result to `done`.
///
/// # Safety
/// As for [`Streamed::verify`], in the leader or a worker.
unsafe fn take_chains(
    t: &Streamed<'_>,
    header: &Header,
    progress: &mut Progress<'_>,
    mut done: impl FnMut(usize, (ChainRow, FirstPass)),
) {
    loop {
        let c = header.next_chain.fetch_add(1, Ordering::AcqRel);
        let Ok(chain) = i32::try_from(c) else { break };
        if chain >= t.chains {
            break;
        }
        let mut pass = FirstPass::new(t.chains);
        // SAFETY: the caller's contract.
        let row = unsafe { t.chain(chain, Some(&mut pass), &[], progress) };
        done(c as usize, (row, pass));
    }
}

/// A parallel worker of worm.verify: reads chains until none is left and
/// writes each one's result into its slot.
///
/// # Safety
/// Called by PostgreSQL's parallel worker machinery with the segment and
/// table of contents [`first_pass`] filled.
#[no_mangle]
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn pg_worm_verify_worker(
    _seg: *mut pg_sys::dsm_segment,
    toc: *mut pg_sys::shm_toc,
) {
    // SAFETY: the leader inserted these keys, with the layouts written here,
    // before launching the workers; the segment outlives the worker.
    let (header, anchors, slots) = unsafe {
        let header = &*(pg_sys::shm_toc_lookup(toc, KEY_HEADER, false) as *const Header);
        let at = pg_sys::shm_toc_lookup(toc, KEY_ANCHORS, false) as *const u8;
        let anchors = std::slice::from_raw_parts(at, header.anchors_len as usize);
        let slots = pg_sys::shm_toc_lookup(toc, KEY_SLOTS, false) as *mut u8;
        (header, decode_anchors(anchors), slots)
    };
    // The leader holds its lock on the table; the lock group shares it.
    let rel = pg::Rel::open(header.relid, pg_sys::AccessShareLock);
    let table = rel.display_name();
    // SAFETY: `rel` is open for the whole worker.
    let plan = unsafe { encode::build_plan(rel.as_ptr(), &table, true) }.or_raise();
    let t = Streamed {
        rel: rel.as_ptr(),
        plan: &plan,
        index: header.index,
        uid: &header.uid,
        chains: header.chains,
        anchors: &anchors,
        table: &table,
    };
    // Workers send no NOTICE; their rows count in the leader's.
    let mut progress = Progress::new(0, &table, header.chains);
    progress.shared = Some(&header.rows);
    // SAFETY: `rel` is open, `plan` built for it, `index` its chain index
    // (the leader's); each slot is written by the one participant that took
    // its chain, and read by the leader after this worker has finished.
    unsafe {
        take_chains(&t, header, &mut progress, |c, (row, pass)| {
            write_slot(slots.add(c * SLOT_BYTES), &row, &pass);
            header.worker_chains.fetch_add(1, Ordering::AcqRel);
        });
    }
}

/// Writes a chain's result into its slot (or marks it too big).
///
/// # Safety
/// `slot` points to SLOT_BYTES bytes of the segment, written by no one else.
unsafe fn write_slot(slot: *mut u8, row: &ChainRow, pass: &FirstPass) {
    let mut w = Writer::default();
    w.chain_row(row);
    w.first_pass(pass);
    let bytes = w.0;
    // SAFETY: the caller's contract; the state is 4-aligned (slots are
    // SLOT_BYTES apart from a buffer-aligned start).
    unsafe {
        let state = &*(slot as *const AtomicU32);
        if bytes.len() > SLOT_BYTES - SLOT_HEADER {
            state.store(SLOT_TOO_BIG, Ordering::Release);
            return;
        }
        let len = u32::try_from(bytes.len()).unwrap_or(0);
        std::ptr::copy_nonoverlapping(len.to_ne_bytes().as_ptr(), slot.add(4), 4);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), slot.add(SLOT_HEADER), bytes.len());
        state.store(SLOT_DONE, Ordering::Release);
    }
}

/// A chain's result from its slot; None when no worker wrote one.
///
/// # Safety
/// `slot` points to SLOT_BYTES bytes of the segment, no longer written.
unsafe fn read_slot(slot: *const u8, chains: i32) -> Option<(ChainRow, FirstPass)> {
    // SAFETY: the caller's contract.
    let bytes = unsafe {
        let state = &*(slot as *const AtomicU32);
        match state.load(Ordering::Acquire) {
            SLOT_DONE => {}
            SLOT_EMPTY | SLOT_TOO_BIG => return None,
            _ => return None,
        }
        let mut len = [0u8; 4];
        std::ptr::copy_nonoverlapping(slot.add(4), len.as_mut_ptr(), 4);
        let len = (u32::from_ne_bytes(len) as usize).min(SLOT_BYTES - SLOT_HEADER);
        std::slice::from_raw_parts(slot.add(SLOT_HEADER), len)
    };
    let mut r = Reader { b: bytes, at: 0 };
    let row = r.chain_row()?;
    let pass = r.first_pass(chains)?;
    Some((row, pass))
}

impl FirstPass {
    /// Adds what another reading collected (results merged in chain order
    /// give the serial reading's).
    fn merge(&mut self, other: FirstPass) {
        for (mine, theirs) in self.through_index.iter_mut().zip(other.through_index) {
            *mine += theirs;
        }
        self.index_rows += other.index_rows;
        for (chain, s) in other.strays {
            let e = self.strays.entry(chain).or_default();
            e.rows = e.rows.saturating_add(s.rows);
            e.first_seq = match (e.first_seq, s.first_seq) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.misfits.extend(other.misfits);
        self.relisted |= other.relisted;
    }
}

// ---- the bytes of anchors and results in shared memory ----

fn encode_anchors(anchors: &BTreeMap<i32, AnchorEntry>) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(u32::try_from(anchors.len()).unwrap_or(0));
    for (chain, a) in anchors {
        w.i32(*chain);
        match a {
            AnchorEntry::Good(a) => {
                w.u8(0);
                w.i64(a.seq);
                w.raw(&a.link);
            }
            AnchorEntry::Bad { seq, why } => {
                w.u8(1);
                w.opt_i64(*seq);
                w.bytes(why.as_bytes());
            }
        }
    }
    w.0
}

/// The anchors as the leader wrote them; an unreadable encoding (never
/// written) raises an ERROR rather than verify without anchors.
fn decode_anchors(b: &[u8]) -> BTreeMap<i32, AnchorEntry> {
    let mut r = Reader { b, at: 0 };
    let mut read = || -> Option<BTreeMap<i32, AnchorEntry>> {
        let mut out = BTreeMap::new();
        for _ in 0..r.u32()? {
            let chain = r.i32()?;
            let entry = match r.u8()? {
                0 => AnchorEntry::Good(Anchor {
                    seq: r.i64()?,
                    link: r.raw::<32>()?,
                }),
                _ => AnchorEntry::Bad {
                    seq: r.opt_i64()?,
                    why: r.string()?,
                },
            };
            out.insert(chain, entry);
        }
        Some(out)
    };
    read()
        .ok_or_else(|| {
            WormError::Internal(
                "a parallel worker of worm.verify could not read the purge anchors".into(),
            )
        })
        .or_raise()
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.raw(&v.to_ne_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.raw(&v.to_ne_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.raw(&v.to_ne_bytes());
    }
    fn opt_i32(&mut self, v: Option<i32>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.i32(v);
            }
        }
    }
    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.i64(v);
            }
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.raw(b);
    }
    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.u8(0),
            Some(b) => {
                self.u8(1);
                self.bytes(b);
            }
        }
    }
    fn chain_row(&mut self, r: &ChainRow) {
        self.opt_i32(r.chain);
        self.i64(r.rows_checked);
        self.u8(u8::from(r.ok));
        self.opt_i64(r.first_bad_seq);
        self.bytes(r.detail.as_bytes());
        self.i64(r.problems);
        self.opt_i64(r.head_seq);
        self.opt_bytes(r.head_link.as_deref().map(str::as_bytes));
        self.u8(u8::from(r.whole_table));
    }
    fn record(&mut self, r: &RowRecord) {
        self.opt_i64(r.seq);
        self.opt_i64(r.inserted_at);
        self.opt_bytes(r.stored_link.as_deref());
        self.raw(&r.row_hash);
    }
    fn first_pass(&mut self, p: &FirstPass) {
        let counted: Vec<(usize, i64)> = p
            .through_index
            .iter()
            .enumerate()
            .filter(|(_, n)| **n != 0)
            .map(|(c, n)| (c, *n))
            .collect();
        self.u32(u32::try_from(counted.len()).unwrap_or(0));
        for (c, n) in counted {
            self.u32(u32::try_from(c).unwrap_or(u32::MAX));
            self.i64(n);
        }
        self.i64(p.index_rows);
        self.u32(u32::try_from(p.strays.len()).unwrap_or(0));
        for (chain, s) in &p.strays {
            self.opt_i32(*chain);
            self.i64(s.rows);
            self.opt_i64(s.first_seq);
        }
        self.u32(u32::try_from(p.misfits.len()).unwrap_or(0));
        for m in &p.misfits {
            self.i32(m.chain);
            self.u32(m.tid.0);
            self.raw(&m.tid.1.to_ne_bytes());
            self.record(&m.record);
        }
        self.u8(u8::from(p.relisted));
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn raw<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.at.checked_add(N)?;
        let v = self.b.get(self.at..end)?.try_into().ok()?;
        self.at = end;
        Some(v)
    }
    fn u8(&mut self) -> Option<u8> {
        self.raw::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.raw().map(u16::from_ne_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.raw().map(u32::from_ne_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.raw().map(i32::from_ne_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.raw().map(i64::from_ne_bytes)
    }
    fn opt_i32(&mut self) -> Option<Option<i32>> {
        match self.u8()? {
            0 => Some(None),
            _ => self.i32().map(Some),
        }
    }
    fn opt_i64(&mut self) -> Option<Option<i64>> {
        match self.u8()? {
            0 => Some(None),
            _ => self.i64().map(Some),
        }
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.u32()? as usize;
        let end = self.at.checked_add(len)?;
        let v = self.b.get(self.at..end)?.to_vec();
        self.at = end;
        Some(v)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
    fn opt_bytes(&mut self) -> Option<Option<Vec<u8>>> {
        match self.u8()? {
            0 => Some(None),
            _ => self.bytes().map(Some),
        }
    }
    fn chain_row(&mut self) -> Option<ChainRow> {
        Some(ChainRow {
            chain: self.opt_i32()?,
            rows_checked: self.i64()?,
            ok: self.u8()? != 0,
            first_bad_seq: self.opt_i64()?,
            detail: self.string()?,
            problems: self.i64()?,
            head_seq: self.opt_i64()?,
            head_link: match self.opt_bytes()? {
                None => None,
                Some(b) => Some(String::from_utf8(b).ok()?),
            },
            whole_table: self.u8()? != 0,
        })
    }
    fn record(&mut self) -> Option<RowRecord> {
        Some(RowRecord {
            seq: self.opt_i64()?,
            inserted_at: self.opt_i64()?,
            stored_link: self.opt_bytes()?,
            row_hash: self.raw::<32>()?,
        })
    }
    fn first_pass(&mut self, chains: i32) -> Option<FirstPass> {
        let mut p = FirstPass::new(chains);
        for _ in 0..self.u32()? {
            let c = self.u32()? as usize;
            let n = self.i64()?;
            *p.through_index.get_mut(c)? = n;
        }
        p.index_rows = self.i64()?;
        for _ in 0..self.u32()? {
            let chain = self.opt_i32()?;
            let rows = self.i64()?;
            let first_seq = self.opt_i64()?;
            p.strays.insert(chain, StrayCount { rows, first_seq });
        }
        for _ in 0..self.u32()? {
            let chain = self.i32()?;
            let tid = (self.u32()?, self.u16()?);
            let record = self.record()?;
            p.misfits.push(Misfit { chain, tid, record });
        }
        p.relisted = self.u8()? != 0;
        Some(p)
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    /// A result survives its slot's bytes unchanged.
    #[pg_test]
    fn results_round_trip() {
        let row = ChainRow {
            chain: Some(3),
            rows_checked: 12,
            ok: false,
            first_bad_seq: Some(4),
            detail: "row 4: its stored link".into(),
            problems: 2,
            head_seq: Some(12),
            head_link: Some("ab".repeat(32)),
            whole_table: false,
        };
        let mut pass = FirstPass::new(5);
        pass.through_index[3] = 11;
        pass.through_index[1] = 1;
        pass.index_rows = 12;
        pass.strays.insert(
            None,
            StrayCount {
                rows: 2,
                first_seq: Some(7),
            },
        );
        pass.strays.insert(
            Some(9),
            StrayCount {
                rows: 1,
                first_seq: None,
            },
        );
        pass.misfits.push(Misfit {
            chain: 1,
            tid: (70000, 5),
            record: RowRecord {
                seq: Some(8),
                inserted_at: None,
                stored_link: Some(vec![1, 2, 3]),
                row_hash: [6; 32],
            },
        });
        pass.relisted = true;
        let mut slot = vec![0u64; SLOT_BYTES / 8];
        let at = slot.as_mut_ptr().cast::<u8>();
        // SAFETY: a slot-sized, 8-aligned buffer of this test.
        let back = unsafe {
            write_slot(at, &row, &pass);
            read_slot(at, 5)
        };
        let (r, p) = back.unwrap();
        assert_eq!(r, row);
        assert_eq!(p.through_index, vec![0, 1, 0, 11, 0]);
        assert_eq!(p.index_rows, 12);
        assert_eq!(p.strays, pass.strays);
        assert_eq!(p.misfits.len(), 1);
        assert_eq!(p.misfits[0].tid, (70000, 5));
        assert_eq!(p.misfits[0].record, pass.misfits[0].record);
        assert!(p.relisted);
    }

    #[pg_test]
    fn anchors_round_trip() {
        let mut a = BTreeMap::new();
        a.insert(0, AnchorEntry::from_stored(Some(5), Some(&[3; 32])));
        a.insert(2, AnchorEntry::from_stored(Some(2), Some(&[1, 2])));
        a.insert(7, AnchorEntry::from_stored(None, None));
        assert_eq!(decode_anchors(&encode_anchors(&a)), a);
    }
}
