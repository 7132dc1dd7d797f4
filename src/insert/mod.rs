//! How a row is chained on insert: the BEFORE INSERT trigger (`triggers`)
//! takes a chain of the table and its head (`chain`), hashes the row's
//! canonical encoding (`encode`) and writes the worm_ columns.

pub mod chain;
pub mod encode;
pub mod triggers;
