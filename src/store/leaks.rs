//! Leak reports as the store keeps them: each exposure once, by its id, with what it matched.
//! Never a secret: a [`Leak`] holds only ids, locations, times and one-way indicators.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Result;
use crate::leaks::Leak;
pub use crate::leaks::LeakMatch;

/// One leak as answered, for [`Leaks::leaks_answered`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    pub leak: Leak,
    pub matched: Vec<LeakMatch>,
    /// What was done, for the audit event; never a secret.
    pub what: serde_json::Value,
    /// Whether the leak and its matches are stored as they are now (recorded by this ingest and
    /// unchanged since): only the answer's time is written then.
    pub stored_as_is: bool,
}

/// A leak as stored: the exposure, what it matched, when keywarden first read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredLeak {
    #[serde(flatten)]
    pub leak: Leak,
    pub matched: Vec<LeakMatch>,
    pub ingested_at: DateTime<Utc>,
}

/// What recording a leak found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// Recorded by this call.
    pub new: bool,
    /// Not answered yet.
    pub unanswered: bool,
    /// The credentials it matched when it was last answered (or recorded).
    pub matched_before: Vec<LeakMatch>,
    /// Whether the report dismissed it then.
    pub dismissed_before: bool,
}

/// Leak intake.
#[async_trait]
pub trait Leaks: Send + Sync {
    /// Records the leaks not recorded before (by id), each with its matches and a `leak.ingested`
    /// audit event, in one transaction. Returns, for each leak given, whether it was new and
    /// whether it still waits for its answer ([`Leaks::leaks_answered`] not yet called): a report
    /// ingested twice records nothing the second time, and one whose ingest stopped part-way is
    /// answered again.
    async fn record_leaks(
        &self,
        leaks: &[(Leak, Vec<LeakMatch>)],
        at: DateTime<Utc>,
    ) -> Result<Vec<Recorded>>;

    /// Marks leaks answered (findings raised, signers distrusted, containment started), each as
    /// it now stands (the leak, every credential it has matched), with one `leak.answered` audit
    /// event each saying what was done; all in one transaction.
    async fn leaks_answered(&self, answered: &[Answered], at: DateTime<Utc>) -> Result<()>;

    /// Every recorded leak, oldest first.
    /// Records one-way hashes of a secret keywarden created for a credential (`(algorithm,
    /// value)`: `sha1`, `hmsl`), with a `credential.secret_hashed` audit event naming the
    /// algorithms; a hash recorded before is kept.
    async fn record_secret_hashes(
        &self,
        source: &str,
        credential_external_id: &str,
        hashes: &[(&'static str, String)],
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// The credentials (source, external id) with a recorded hash of this algorithm among
    /// `values`, with the value; chunked, through the `(algorithm, value)` index.
    async fn secret_hashes(
        &self,
        algorithm: &str,
        values: &[String],
    ) -> Result<Vec<(String, String, String)>>;

    async fn leaks(&self) -> Result<Vec<StoredLeak>>;
}
