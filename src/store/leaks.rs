//! Leak reports as the store keeps them: each exposure once, by its id, with what it matched.
//! Never a secret: a [`Leak`] holds only ids, locations, times and one-way indicators.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Result;
use crate::leaks::Leak;
pub use crate::leaks::LeakMatch;

/// A leak as stored: the exposure, what it matched, when keywarden first read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredLeak {
    #[serde(flatten)]
    pub leak: Leak,
    pub matched: Vec<LeakMatch>,
    pub ingested_at: DateTime<Utc>,
}

/// Leak intake.
#[async_trait]
pub trait Leaks: Send + Sync {
    /// Records the leaks not recorded before (by id), each with its matches and a `leak.ingested`
    /// audit event, in one transaction. Returns, for each leak given, whether it was new: a
    /// report ingested twice records nothing the second time.
    async fn record_leaks(
        &self,
        leaks: &[(Leak, Vec<LeakMatch>)],
        at: DateTime<Utc>,
    ) -> Result<Vec<bool>>;

    /// Every recorded leak, oldest first.
    async fn leaks(&self) -> Result<Vec<StoredLeak>>;
}
