//! Unit and property tests of pg_worm_core.

mod chain_verify;
mod encoding;
mod properties;
mod vectors;
