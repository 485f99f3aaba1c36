//! keywarden: a credential-governance daemon for non-human identities.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the invariants each module keeps.

pub mod actions;
pub mod audit;
pub mod cli;
pub mod config;
pub mod diagnostic;
pub mod intake;
pub mod leaks;
pub mod ledger;
pub mod policy;
pub mod report;
pub mod scan;
pub(crate) mod secret_file;
pub mod signers;
pub mod store;
pub mod trust;
