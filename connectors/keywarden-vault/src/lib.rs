//! The `vault` connector: the machine credentials a Vault or OpenBao server holds, read through
//! vaultrs (with a thin raw-request layer on vaultrs's own HTTP client where vaultrs falls short).
//!
//! Per namespace, after discovering its mounts (`sys/mounts`, `sys/auth`):
//! - identity entities (`vault_entity` identities; metadata names the owner);
//! - token accessors (`token` credentials of their entity, or of the auth path that minted them);
//! - AppRole roles (`approle_role` identities) and their secret-id accessors (`secret_id`);
//! - KV v2 and v1 secrets (`kv_secret`, of their mount, a `vault_mount` identity), never their
//!   values;
//! - Transit keys (`transit_key` identities) and each version (`transit_key_version`); a signing
//!   key's versions carry their public key and `sha256_spki` key id, so each is a signer.
//!
//! Signing power: which tokens and secret-ids may sign with each Transit signer, from their ACL
//! policies (`holders`, resolved by `acl`). Last use: from Vault's file audit log, followed
//! between scans (`audit_file`), parsed (`audit_log`) and matched to the inventory (`last_use`).
//!
//! A path that cannot be read is a scan error of the identity it belongs to, whose ledger entries
//! are kept as they were; a failure of a whole kind (the server down, a list denied) fails the
//! source's scan so that nothing is marked gone on its strength.

mod acl;
mod actions;
mod approle;
mod audit_file;
mod audit_log;
mod auth;
mod client;
mod config;
mod connector;
mod deliver;
mod entities;
mod facts;
mod holders;
mod kv;
mod last_use;
mod mounts;
mod rotation;
mod tokens;
mod transit;

pub use crate::acl::{Acl, PolicyError};
pub use crate::approle::LAST_LOGIN;
pub use crate::client::VaultError;
pub use crate::config::VaultConfig;
pub use crate::connector::VaultConnector;
pub use crate::rotation::{DeliverRule as SecretIdDeliverRule, RotationConfig};
pub use crate::tokens::LAST_RENEWAL;
