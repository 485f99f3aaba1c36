//! Reading the signers: the ledger's, the stored trust records and the config's holders, put
//! together by [`super::assemble`]. The I/O half of `signers` (the store, and the key files the
//! config names).

use chrono::{DateTime, Utc};

use super::{Inputs, Signer, assemble};
use crate::config::Config;
use crate::config::signers::HolderSelector;
use crate::store::{Store, StoreError};
use crate::trust::TrustRecord;

/// The config's holders with their key ids resolved (a `file` key is read), or every entry's
/// error, each naming its place in the config file.
pub fn configured_holders(config: &Config) -> Result<Vec<(String, Vec<HolderSelector>)>, String> {
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
    if errors.is_empty() {
        Ok(configured)
    } else {
        Err(errors.join("\n"))
    }
}

/// Every signer: the ledger's and the stored records', with the given holders.
pub async fn signers(
    store: &dyn Store,
    configured: &[(String, Vec<HolderSelector>)],
) -> Result<Vec<Signer>, StoreError> {
    let ledger = store.signers().await?;
    let records = store
        .distrust_periods()
        .await?
        .into_iter()
        .map(|(key_id, periods)| {
            let valid_from = ledger
                .iter()
                .find(|it| it.key_id == key_id)
                .and_then(|it| it.valid_from())
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            (
                key_id,
                TrustRecord {
                    valid_from,
                    periods,
                },
            )
        })
        .collect();
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
