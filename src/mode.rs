//! The enforcement mode of this backend: whether pg_worm was loaded through
//! shared_preload_libraries (its hooks run) or not (triggers and event
//! triggers only). Set once by `_PG_init`.

use crate::error::WormError;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Records that the hooks were installed (called from `hooks::init`).
pub fn set_preloaded() {
    PRELOADED.store(true, Ordering::Relaxed);
}

/// Whether this server loaded pg_worm through shared_preload_libraries.
pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

thread_local! {
    static WARNED: Cell<bool> = const { Cell::new(false) };
}

/// Once per session, says so when the server runs in the weaker mode.
pub fn notice_weaker_mode() {
    if preloaded() || WARNED.with(|w| w.replace(true)) {
        return;
    }
    pgrx::notice!(
        "pg_worm runs without its hooks (add pg_worm to shared_preload_libraries): a superuser can disable its event triggers and then switch protection off; worm.verify still detects every changed, removed or forged row"
    );
}

/// Functions that write (protect, checkpoint, retention, holds, purge,
/// trusted keys) run on the primary; on a standby they say so instead of
/// failing on a transaction id.
pub fn require_primary(function: &'static str) -> Result<(), WormError> {
    // SAFETY: reads the shared recovery state.
    if unsafe { pgrx::pg_sys::RecoveryInProgress() } {
        return Err(WormError::OnStandby { function });
    }
    Ok(())
}
