//! Reading the ledger: credentials with their identities, history and counts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{CredentialCursor, HistoryEntry, PAGE, Result};
use crate::ledger::{IdentityCounts, LedgerCredential};

/// What the ledger holds: credentials that are not gone page by page, one credential's history,
/// an identity's credentials. Reads only.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Up to `limit` credentials that are not gone, with their identities, after `after` in a
    /// stable order; each comes with the cursor to continue from.
    async fn credentials_page(
        &self,
        after: CredentialCursor,
        limit: u32,
    ) -> Result<Vec<(CredentialCursor, LedgerCredential)>>;

    /// Every credential that is not gone, with its identity. Holds them all: for small ledgers
    /// and tests; scans read [`Ledger::credentials_page`].
    async fn present_credentials(&self) -> Result<Vec<LedgerCredential>> {
        let mut all = Vec::new();
        let mut after = CredentialCursor::START;
        loop {
            let page = self.credentials_page(after, PAGE).await?;
            let Some((last, _)) = page.last() else {
                return Ok(all);
            };
            after = *last;
            all.extend(page.into_iter().map(|(_, it)| it));
        }
    }

    /// The history of one credential, oldest first.
    async fn credential_history(
        &self,
        source: &str,
        external_id: &str,
    ) -> Result<Vec<HistoryEntry>>;

    /// The status of one credential (`gone` included), if the ledger has it.
    async fn credential_status(&self, source: &str, external_id: &str) -> Result<Option<String>>;

    /// The first-seen time of one credential, if the ledger has it.
    async fn credential_first_seen(
        &self,
        source: &str,
        external_id: &str,
    ) -> Result<Option<DateTime<Utc>>>;

    /// How many credentials (not gone) each of these identities (source, identity external id)
    /// holds, by kind and status, for conditions over an identity's credentials.
    async fn identity_counts(&self, identities: &[(String, String)]) -> Result<IdentityCounts>;

    /// The credentials of one identity of a source that are not gone (incremental scans).
    async fn identity_credentials(
        &self,
        source: &str,
        identity_external_id: &str,
    ) -> Result<Vec<keywarden_connector::Credential>>;

    /// The ledger's credentials (gone ones included) with this external id, in any source.
    async fn find_credential(&self, external_id: &str) -> Result<Vec<LedgerCredential>>;

    /// [`Self::find_credential`] for many external ids at once (in chunks under SQLite's limit
    /// of bound parameters), in no particular order.
    async fn find_credentials(&self, external_ids: &[String]) -> Result<Vec<LedgerCredential>>;

    /// The credentials of `source` with these external ids, gone ones included (and marked
    /// gone), in no particular order: [`Self::find_credential`] for many credentials of one source
    /// at once.
    async fn source_credentials(
        &self,
        source: &str,
        external_ids: &[String],
    ) -> Result<Vec<LedgerCredential>>;

    /// The present credentials of these identities of `source`, by identity, each identity's in
    /// row order: [`Self::identity_credentials`] for many identities at once.
    async fn identities_credentials(
        &self,
        source: &str,
        identities: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<keywarden_connector::Credential>>>;
}
