//! Reading the signers: the ledger's, the stored trust records and the config's holders, put
//! together by [`super::assemble`]. The I/O half of `signers` (the store, and the key files the
//! config names).

use super::{Inputs, Signer, assemble};
use crate::config::Config;
use crate::config::signers::HolderSelector;
use crate::store::{Store, StoreError};

/// The config's holders with their key ids resolved (a `file` key is read), and the error of each
/// entry whose key could not be read, naming its place in the config file.
pub fn configured_holders(config: &Config) -> (Vec<(String, Vec<HolderSelector>)>, Vec<String>) {
    let mut configured = Vec::with_capacity(config.signers.len());
    let mut errors = Vec::new();
    for entry in &config.signers {
        match entry.key_id() {
            Ok(key_id) => configured.push((key_id, entry.held_by.clone())),
            Err(err) => errors.push(format!(
                "{}:{}:{}: signers: {err}",
                config.file.display(),
                entry.line,
                entry.column
            )),
        }
    }
    (configured, errors)
}

/// Every signer: the ledger's and the stored records', with the given holders.
pub async fn signers(
    store: &dyn Store,
    configured: &[(String, Vec<HolderSelector>)],
) -> Result<Vec<Signer>, StoreError> {
    let ledger = store.signers().await?;
    let records = store.distrust_periods().await?;
    // The holders' credentials are read only when the config names holders.
    let credentials = if configured.is_empty() {
        Vec::new()
    } else {
        store.present_credentials().await?
    };
    Ok(assemble(Inputs {
        ledger,
        records,
        configured,
        credentials: &credentials,
    }))
}
