//! The audit log's chain: how an event's hash is computed, how a chain is verified, and the signed
//! checkpoints of its head.
//!
//! Every observation, decision and action is an event; each event holds the hash of the one before
//! it, so changing, deleting or reordering a stored event breaks the chain at that point.
//! The hash is an HMAC-SHA256 under a key kept outside the database ([`AuditKey`]), so whoever
//! holds only the database cannot recompute (re-chain) it. Stores written before the chain was
//! keyed keep their old events as a *legacy* prefix of plain SHA-256 links, closed by one keyed
//! [`KEYED_MARKER`] event that commits to the prefix's head; see [`Verifier`].
//! A [`Checkpoint`] is a head (sequence, hash, time) with a MAC, kept elsewhere: verifying against
//! it also detects the newest events being cut off.
//!
//! This module is pure: no I/O, no clock. The store reads and writes the rows and the key.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The kind of the keyed event that closes a legacy (unkeyed) prefix of the log.
pub const KEYED_MARKER: &str = "audit.keyed";

/// The `format` of a checkpoint.
pub const CHECKPOINT_FORMAT: &str = "keywarden-audit-checkpoint/1";

/// An event before it is appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// What happened, dotted: `scan.completed`, `finding.opened`, ...
    pub kind: &'static str,
    /// What it happened to: a scan id, `source/credential/policy`, ...
    pub subject: String,
    /// Details as a JSON object.
    pub data: serde_json::Value,
}

impl NewEvent {
    pub fn new(kind: &'static str, subject: impl Into<String>, data: serde_json::Value) -> Self {
        Self {
            kind,
            subject: subject.into(),
            data,
        }
    }
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub subject: String,
    /// The JSON text exactly as stored (the hash covers these bytes).
    pub data: String,
    pub prev_hash: String,
    pub hash: String,
}

/// An event as stored, borrowed from its row: what the verifier reads, without a copy per field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredEvent<'a> {
    pub seq: i64,
    /// The time as stored. The writer stores exactly the text it hashed (RFC 3339, microseconds,
    /// `Z`), so a keyed event's hash is checked over this text as it is: a time rewritten in
    /// another form of the same instant does not verify.
    pub at: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub data: &'a str,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

/// The text an event's time is stored and hashed as.
pub fn event_time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The secret the chain is keyed with: 32 bytes, zeroized on drop, never printed.
pub struct AuditKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(redacted)")
    }
}

/// Why a text is not an audit key. Never holds the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "not an audit key: expected 32 bytes as 64 hex digits or base64 (44 characters), got {length} characters"
)]
pub struct KeyFormatError {
    pub length: usize,
}

impl AuditKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A key filled by `fill` (a random source: the caller does the I/O).
    pub fn from_fill<E>(fill: impl FnOnce(&mut [u8]) -> Result<(), E>) -> Result<Self, E> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        fill(bytes.as_mut_slice())?;
        Ok(Self(bytes))
    }

    /// Parses 64 hex digits or the base64 (standard alphabet, padded) of 32 bytes; surrounding
    /// white space is ignored.
    pub fn parse(text: &str) -> Result<Self, KeyFormatError> {
        use base64::Engine as _;
        let text = text.trim();
        let error = KeyFormatError {
            length: text.chars().count(),
        };
        let mut bytes = Zeroizing::new([0u8; 32]);
        if text.len() == 64 && hex::decode_to_slice(text, bytes.as_mut_slice()).is_ok() {
            return Ok(Self(bytes));
        }
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| error.clone())?,
        );
        if decoded.len() != 32 {
            return Err(error);
        }
        bytes.copy_from_slice(&decoded);
        Ok(Self(bytes))
    }

    /// The key as 64 hex digits (how the key file holds it).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_slice()))
    }
}

/// An HMAC-SHA256 keyed with 32 bytes. HMAC pads a key shorter than the block to the block size
/// with zeros, so this is HMAC with `key`, through the infallible fixed-size constructor.
fn mac_with(key: &[u8; 32]) -> HmacSha256 {
    let mut block = Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(key);
    <HmacSha256 as KeyInit>::new(&(*block).into())
}

/// HMAC as a PRF: one key per purpose, so no MAC made for one purpose is valid for another.
fn derived(key: &AuditKey, purpose: &str) -> Zeroizing<[u8; 32]> {
    let mut mac = mac_with(&key.0);
    mac.update(purpose.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// The keys derived from an [`AuditKey`], one per purpose (domain separation): the event chain,
/// checkpoints, and the key's public id.
#[derive(Clone)]
pub struct ChainKeys {
    chain: HmacSha256,
    checkpoint: HmacSha256,
    key_id: String,
}

impl fmt::Debug for ChainKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainKeys")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl ChainKeys {
    pub fn derive(key: &AuditKey) -> Self {
        let id = derived(key, "keywarden audit key id v1");
        Self {
            chain: mac_with(&derived(key, "keywarden audit chain v1")),
            checkpoint: mac_with(&derived(key, "keywarden audit checkpoint v1")),
            key_id: hex::encode(&id[..16]),
        }
    }

    /// Names the key without revealing it (a MAC of a constant under a derived key): the store
    /// keeps it to refuse a different key, checkpoints carry it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The keyed hash of an event: HMAC-SHA256 over its fields, as [`legacy_event_hash`] lays
    /// them out.
    pub fn event_hash(
        &self,
        seq: i64,
        at: DateTime<Utc>,
        kind: &str,
        subject: &str,
        data: &str,
        prev_hash: &str,
    ) -> String {
        let mut mac = self.chain.clone();
        feed(
            |bytes| mac.update(bytes),
            seq,
            at,
            kind,
            subject,
            data,
            prev_hash,
        );
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether a stored event's hash is its keyed hash (the MAC compared in constant time,
    /// without re-encoding it).
    pub fn verifies(&self, event: &StoredEvent<'_>) -> bool {
        let mut expected = [0u8; 32];
        if hex::decode_to_slice(event.hash, &mut expected).is_err() {
            return false;
        }
        let mut mac = self.chain.clone();
        feed_text(
            |bytes| mac.update(bytes),
            event.seq,
            event.at,
            event.kind,
            event.subject,
            event.data,
            event.prev_hash,
        );
        mac.verify_slice(&expected).is_ok()
    }

    /// A checkpoint of `head`, taken at `at`.
    pub fn checkpoint(&self, head: &Head, at: DateTime<Utc>) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            format: CHECKPOINT_FORMAT.to_owned(),
            seq: head.seq,
            hash: head.hash.clone(),
            at,
            key_id: self.key_id.clone(),
            mac: String::new(),
        };
        checkpoint.mac = hex::encode(self.checkpoint_mac(&checkpoint).finalize().into_bytes());
        checkpoint
    }

    fn checkpoint_mac(&self, checkpoint: &Checkpoint) -> HmacSha256 {
        let mut mac = self.checkpoint.clone();
        let seq = checkpoint.seq.to_string();
        let at = checkpoint.at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        for field in [
            checkpoint.format.as_str(),
            seq.as_str(),
            checkpoint.hash.as_str(),
            at.as_str(),
            checkpoint.key_id.as_str(),
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }

    /// Checks that a checkpoint was made with this key and not changed since.
    pub fn authenticate(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        if checkpoint.format != CHECKPOINT_FORMAT {
            return Err(CheckpointError::Format(checkpoint.format.clone()));
        }
        if checkpoint.key_id != self.key_id {
            return Err(CheckpointError::OtherKey(checkpoint.key_id.clone()));
        }
        let mac = hex::decode(&checkpoint.mac).map_err(|_| CheckpointError::Forged)?;
        self.checkpoint_mac(checkpoint)
            .verify_slice(&mac)
            .map_err(|_| CheckpointError::Forged)
    }
}

/// Length-prefixes each field so no two different events share an input.
fn feed(
    update: impl FnMut(&[u8]),
    seq: i64,
    at: DateTime<Utc>,
    kind: &str,
    subject: &str,
    data: &str,
    prev_hash: &str,
) {
    feed_text(
        update,
        seq,
        &event_time_text(at),
        kind,
        subject,
        data,
        prev_hash,
    );
}

/// [`feed`] with the time given as its stored text.
fn feed_text(
    mut update: impl FnMut(&[u8]),
    seq: i64,
    at: &str,
    kind: &str,
    subject: &str,
    data: &str,
    prev_hash: &str,
) {
    let mut number = itoa::Buffer::new();
    let seq = number.format(seq);
    for field in [seq, at, kind, subject, data, prev_hash] {
        update(&(field.len() as u64).to_be_bytes());
        update(field.as_bytes());
    }
}

/// The unkeyed hash of events written before the chain was keyed: SHA-256 over the sequence
/// number, time, kind, subject, data and the previous event's hash, each length-prefixed.
pub fn legacy_event_hash(
    seq: i64,
    at: DateTime<Utc>,
    kind: &str,
    subject: &str,
    data: &str,
    prev_hash: &str,
) -> String {
    let mut hasher = Sha256::new();
    feed(
        |bytes| hasher.update(bytes),
        seq,
        at,
        kind,
        subject,
        data,
        prev_hash,
    );
    hex::encode(hasher.finalize())
}

/// The data of the [`KEYED_MARKER`] event closing a legacy prefix of `legacy_through` events whose
/// last hash is `legacy_head`.
pub fn keyed_marker_data(legacy_through: i64, legacy_head: &str) -> serde_json::Value {
    serde_json::json!({ "legacy_through": legacy_through, "legacy_head": legacy_head })
}

/// The newest event of a log: its sequence number and hash (0 and [`GENESIS`] when empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

impl Head {
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

/// A signed head of the log, to keep outside the database.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub format: String,
    pub seq: i64,
    pub hash: String,
    pub at: DateTime<Utc>,
    /// The [`ChainKeys::key_id`] of the key it was made with.
    pub key_id: String,
    /// HMAC-SHA256 of the fields above under the checkpoint key.
    pub mac: String,
}

/// Why a checkpoint is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("unknown checkpoint format `{0}` (expected `{CHECKPOINT_FORMAT}`)")]
    Format(String),
    #[error("the checkpoint was made with another audit key (key id {0})")]
    OtherKey(String),
    #[error("the checkpoint is forged or was changed: its MAC does not match")]
    Forged,
}

/// Where a chain is broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenLink {
    /// The sequence number of the first event that does not check out.
    pub seq: i64,
    pub reason: BrokenReason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokenReason {
    /// The event's content does not match its hash: it was changed, or re-chained without the key.
    HashMismatch,
    /// The event does not point at the event before it: one was removed or the order changed.
    PrevHashMismatch,
    /// Sequence numbers jump: events were removed.
    SequenceGap { expected: i64 },
    /// The event after the legacy prefix is not the keyed marker that closes it.
    NotKeyedMarker,
    /// The log ends inside its legacy prefix, or the keyed marker that must follow it is missing.
    MissingKeyedMarker { legacy_through: i64 },
    /// The checkpoint's event is in the log with another hash.
    CheckpointMismatch,
    /// The log ends before the checkpoint's event: the newest events were cut off.
    Truncated { checkpoint: i64 },
}

impl fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        match &self.reason {
            BrokenReason::HashMismatch => write!(
                f,
                "event {seq} was changed or re-chained: its content does not match its keyed hash"
            ),
            BrokenReason::PrevHashMismatch => write!(
                f,
                "event {seq} does not follow the event before it: an event was removed or reordered"
            ),
            BrokenReason::SequenceGap { expected } => write!(
                f,
                "event {expected} is missing: the next event found is {seq}"
            ),
            BrokenReason::NotKeyedMarker => write!(
                f,
                "event {seq} should be the keyed `{KEYED_MARKER}` event closing the legacy \
                 (unkeyed) events before it, and is not"
            ),
            BrokenReason::MissingKeyedMarker { legacy_through } => write!(
                f,
                "the log ends at event {seq}: the keyed `{KEYED_MARKER}` event that must follow \
                 the {legacy_through} legacy events is missing"
            ),
            BrokenReason::CheckpointMismatch => write!(
                f,
                "event {seq} does not match the checkpoint: the log was rewritten after it"
            ),
            BrokenReason::Truncated { checkpoint } => write!(
                f,
                "the log ends at event {seq}, before the checkpoint's event {checkpoint}: \
                 the newest events were cut off"
            ),
        }
    }
}

/// Why a log does not verify: a broken chain, or a checkpoint refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditFailure {
    #[error("audit log broken: {0}")]
    Broken(BrokenLink),
    #[error("checkpoint refused: {0}")]
    Checkpoint(CheckpointError),
}

impl std::error::Error for BrokenLink {}

/// What a verification checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub events: u64,
    /// How many of them are legacy (unkeyed) events, authenticated through the keyed marker.
    pub legacy: u64,
    pub head: Head,
    /// The sequence number of the checkpoint checked against, if any.
    pub checkpoint: Option<i64>,
}

/// Checks a chain fed event by event in sequence order, in constant memory.
///
/// Events `1..=legacy_through` must form a plain SHA-256 chain; event `legacy_through + 1` must be
/// the keyed [`KEYED_MARKER`] committing to that prefix's length and head; every later event is
/// keyed. Moving the boundary therefore breaks the chain: events above it do not verify as legacy,
/// events below it do not verify as keyed, and the marker cannot be forged without the key.
#[derive(Debug)]
pub struct Verifier<'a> {
    keys: &'a ChainKeys,
    legacy_through: i64,
    checkpoint: Option<&'a Checkpoint>,
    prev: Head,
    legacy: u64,
}

impl<'a> Verifier<'a> {
    pub fn new(keys: &'a ChainKeys, legacy_through: i64) -> Self {
        Self {
            keys,
            legacy_through,
            checkpoint: None,
            prev: Head::genesis(),
            legacy: 0,
        }
    }

    /// Also checks the log against an authenticated checkpoint.
    pub fn with_checkpoint(mut self, checkpoint: &'a Checkpoint) -> Result<Self, CheckpointError> {
        self.keys.authenticate(checkpoint)?;
        self.checkpoint = Some(checkpoint);
        Ok(self)
    }

    /// Checks the next event.
    pub fn push(&mut self, event: &Event) -> Result<(), BrokenLink> {
        let at = event_time_text(event.at);
        self.push_stored(&StoredEvent {
            seq: event.seq,
            at: &at,
            kind: &event.kind,
            subject: &event.subject,
            data: &event.data,
            prev_hash: &event.prev_hash,
            hash: &event.hash,
        })
    }

    /// Checks the next event as stored.
    pub fn push_stored(&mut self, event: &StoredEvent<'_>) -> Result<(), BrokenLink> {
        let broken = |reason| {
            Err(BrokenLink {
                seq: event.seq,
                reason,
            })
        };
        let expected = self.prev.seq + 1;
        if event.seq != expected {
            return broken(BrokenReason::SequenceGap { expected });
        }
        let is_legacy = event.seq <= self.legacy_through;
        let intact = if is_legacy {
            // Legacy events hashed the time re-formatted from its parsed value.
            DateTime::parse_from_rfc3339(event.at).is_ok_and(|at| {
                legacy_event_hash(
                    event.seq,
                    at.with_timezone(&Utc),
                    event.kind,
                    event.subject,
                    event.data,
                    event.prev_hash,
                ) == event.hash
            })
        } else {
            self.keys.verifies(event)
        };
        if !intact {
            return broken(BrokenReason::HashMismatch);
        }
        if event.prev_hash != self.prev.hash {
            return broken(BrokenReason::PrevHashMismatch);
        }
        if self.legacy_through > 0
            && event.seq == self.legacy_through + 1
            && !self.closes_legacy(event)
        {
            return broken(BrokenReason::NotKeyedMarker);
        }
        if let Some(checkpoint) = self.checkpoint
            && checkpoint.seq == event.seq
            && checkpoint.hash != event.hash
        {
            return broken(BrokenReason::CheckpointMismatch);
        }
        if is_legacy {
            self.legacy += 1;
        }
        self.prev.seq = event.seq;
        self.prev.hash.clear();
        self.prev.hash.push_str(event.hash);
        Ok(())
    }

    fn closes_legacy(&self, event: &StoredEvent<'_>) -> bool {
        event.kind == KEYED_MARKER
            && serde_json::from_str::<serde_json::Value>(event.data).ok()
                == Some(keyed_marker_data(self.legacy_through, &self.prev.hash))
    }

    /// Ends the check: the legacy prefix must be closed, the checkpoint's event reached.
    pub fn finish(self) -> Result<Verified, BrokenLink> {
        let last = self.prev.seq;
        if self.legacy_through > 0 && last <= self.legacy_through {
            return Err(BrokenLink {
                seq: last,
                reason: BrokenReason::MissingKeyedMarker {
                    legacy_through: self.legacy_through,
                },
            });
        }
        if let Some(checkpoint) = self.checkpoint {
            if last < checkpoint.seq {
                return Err(BrokenLink {
                    seq: last,
                    reason: BrokenReason::Truncated {
                        checkpoint: checkpoint.seq,
                    },
                });
            }
            if checkpoint.seq == 0 && checkpoint.hash != GENESIS {
                return Err(BrokenLink {
                    seq: 0,
                    reason: BrokenReason::CheckpointMismatch,
                });
            }
        }
        Ok(Verified {
            events: u64::try_from(last).unwrap_or_default(),
            legacy: self.legacy,
            head: self.prev,
            checkpoint: self.checkpoint.map(|it| it.seq),
        })
    }
}

/// Checks a whole chain given in sequence order (see [`Verifier`]).
pub fn verify<'a>(
    keys: &ChainKeys,
    legacy_through: i64,
    events: impl IntoIterator<Item = &'a Event>,
) -> Result<Verified, BrokenLink> {
    let mut verifier = Verifier::new(keys, legacy_through);
    for event in events {
        verifier.push(event)?;
    }
    verifier.finish()
}

#[cfg(test)]
mod tests;
