//! The ledger facts enforcement reads for its findings, fetched for a chunk of findings in a few
//! statements per source instead of two or three per finding (a scan may hand over thousands).

use std::collections::{HashMap, HashSet};

use keywarden_connector::{Credential, CredentialStatus};

use super::super::{ActionError, pick_target};
use crate::ledger::LedgerCredential;
use crate::store::{Store, StoreError};

/// How many findings one [`View`] covers: bounds the memory it holds.
pub(in crate::actions) const CHUNK: usize = 1_000;

/// One finding's credential to look up, and whether a dry-run plan needs its holder's keys.
pub(super) struct Wanted<'a> {
    pub source: &'a str,
    pub external_id: &'a str,
    pub holder: bool,
}

/// The credentials of a chunk of findings, and the present credentials of their identities where
/// a dry run plans from them, as the ledger held them when the view was read.
#[derive(Default)]
pub(super) struct View {
    /// (source, external id) → the rows found (present or gone).
    targets: HashMap<(String, String), Vec<LedgerCredential>>,
    /// (source, identity) → its present credentials, in row order.
    held: HashMap<(String, String), Vec<Credential>>,
}

impl View {
    pub(super) async fn fetch(
        store: &dyn Store,
        wanted: &[Wanted<'_>],
    ) -> Result<Self, StoreError> {
        let mut by_source: HashMap<&str, Vec<String>> = HashMap::new();
        let mut seen = HashSet::new();
        for it in wanted {
            if seen.insert((it.source, it.external_id)) {
                by_source
                    .entry(it.source)
                    .or_default()
                    .push(it.external_id.to_owned());
            }
        }
        let mut view = Self::default();
        for (source, ids) in by_source {
            for found in store.source_credentials(source, &ids).await? {
                view.targets
                    .entry((found.source.clone(), found.credential.external_id.clone()))
                    .or_default()
                    .push(found);
            }
        }
        let mut holders: HashMap<&str, HashSet<String>> = HashMap::new();
        for it in wanted.iter().filter(|it| it.holder) {
            let key = (it.source.to_owned(), it.external_id.to_owned());
            let present = view.targets.get(&key).into_iter().flatten();
            for found in present.filter(|it| it.credential.status != CredentialStatus::Gone) {
                holders
                    .entry(it.source)
                    .or_default()
                    .insert(found.identity.external_id.clone());
            }
        }
        for (source, identities) in holders {
            let identities: Vec<String> = identities.into_iter().collect();
            for (identity, credentials) in store.identities_credentials(source, &identities).await?
            {
                view.held.insert((source.to_owned(), identity), credentials);
            }
        }
        Ok(view)
    }

    /// The one present credential of `source` with this external id, or why there is none (as
    /// [`super::super::target`] says it).
    pub(super) fn target(
        &self,
        source: &str,
        external_id: &str,
    ) -> Result<LedgerCredential, ActionError> {
        let found = self
            .targets
            .get(&(source.to_owned(), external_id.to_owned()))
            .cloned()
            .unwrap_or_default();
        pick_target(external_id, Some(source), found)
    }

    /// The present credentials of an identity (empty if it has none, or was not asked for).
    pub(super) fn held(&self, source: &str, identity: &str) -> Vec<Credential> {
        self.held
            .get(&(source.to_owned(), identity.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}
