//! Recording scan runs: a run, each source's inventory batch by batch, a source that failed, the
//! run's errors, and what connectors see of the ledger while they scan.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::Inventory;

use super::{Result, ScanId, StoredScanError};

/// Records one source's inventory, batch by batch; see [`Scans::record_source`].
#[async_trait]
pub trait SourceRecorder: Send {
    /// Upserts a batch of identities and credentials with their history and scan errors.
    async fn batch(&mut self, batch: &Inventory) -> Result<()>;

    /// Keeps the connector's state, saved by `finish` (never if the recorder is dropped).
    fn save_state(&mut self, state: serde_json::Value);

    /// Marks what the source no longer has as gone and records the source as scanned.
    async fn finish(self: Box<Self>) -> Result<SourceDiff>;
}

/// What recording one source's inventory changed in the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceDiff {
    pub seen: u64,
    pub new: u64,
    pub changed: u64,
    pub gone: u64,
    pub errors: u64,
}

/// Scan runs and the inventories they record. Every change writes its audit events in the same
/// transaction.
#[async_trait]
pub trait Scans: Send + Sync {
    /// Starts a scan run over `sources` (name, kind).
    async fn begin_scan(&self, at: DateTime<Utc>, sources: &[(String, String)]) -> Result<ScanId>;

    /// Starts recording one source's inventory. Batches are committed as they come, a few at a
    /// time (they are what the source showed; the backend may group them, and `finish` writes
    /// the rest); only [`SourceRecorder::finish`] marks what was not seen as gone. A recorder
    /// dropped without `finish` leaves every earlier credential as it was.
    async fn record_source(
        &self,
        scan: ScanId,
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<Box<dyn SourceRecorder>>;

    /// Records a whole inventory at once: [`Scans::record_source`], one batch, `finish`.
    async fn record_inventory(
        &self,
        scan: ScanId,
        source: &str,
        inventory: &Inventory,
        at: DateTime<Utc>,
    ) -> Result<SourceDiff> {
        let mut recorder = self.record_source(scan, source, at).await?;
        recorder.batch(inventory).await?;
        recorder.finish().await
    }

    /// Records that a source could not be inventoried at all; its ledger entries are left as they
    /// were (nothing is marked gone).
    async fn record_source_failure(
        &self,
        scan: ScanId,
        source: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Ends a scan run.
    async fn finish_scan(&self, scan: ScanId, at: DateTime<Utc>, failed: bool) -> Result<()>;

    /// The scan errors of one scan run.
    async fn scan_errors(&self, scan: ScanId) -> Result<Vec<StoredScanError>>;

    /// What the ledger holds for one source, as connectors see it during a scan.
    fn known(&self, source: &str) -> std::sync::Arc<dyn keywarden_connector::Known>;

    /// The connector state saved by the last completed inventory of a source.
    async fn connector_state(&self, source: &str) -> Result<Option<serde_json::Value>>;
}
