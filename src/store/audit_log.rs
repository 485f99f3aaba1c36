//! The audit log as the store keeps it: pages of events, streamed verification, checkpoints.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PAGE, Result};
use crate::audit::{AuditFailure, BrokenLink, Checkpoint, Event, Head};

/// The keyed audit chain the other store traits append to.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Up to `limit` audit events with a sequence number above `after`, in order.
    async fn events_page(&self, after: i64, limit: u32) -> Result<Vec<Event>>;

    /// The whole audit log, in sequence order. Holds it all: for tests; `audit verify` and
    /// `audit export` read [`AuditLog::events_page`].
    async fn events(&self) -> Result<Vec<Event>> {
        let mut all: Vec<Event> = Vec::new();
        loop {
            let after = all.last().map_or(0, |it| it.seq);
            let page = self.events_page(after, PAGE).await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// Checks the audit log's keyed chain, streamed page by page in constant memory; returns how
    /// many events were checked.
    async fn verify_audit(&self) -> Result<std::result::Result<u64, BrokenLink>>;

    /// Checks the chain, and against `checkpoint` if given (authentic, its event still in the
    /// log with the same hash, the log reaching at least its sequence number).
    async fn verify_audit_with(
        &self,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<std::result::Result<crate::audit::Verified, AuditFailure>>;

    /// A checkpoint of `head` (a head [`AuditLog::verify_audit_with`] verified), taken at `at`.
    fn audit_checkpoint(&self, head: &Head, at: DateTime<Utc>) -> Checkpoint;
}
