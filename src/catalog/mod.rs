//! pg_worm's own tables: the registry of protected tables and the purge
//! anchors (`meta`, which also switches roles for pg_worm's own writes), and
//! the chained ledger of events (`ledger`).

pub mod ledger;
pub mod meta;
