//! The audit log's hash chain: how an event's hash is computed and how a chain is verified.
//!
//! Every observation, decision and action is an event; each event holds the hash of the one before
//! it, so changing, deleting or reordering a stored event breaks the chain at that point.
//! This module is pure: the store writes and reads the rows.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

/// The hash of an event: SHA-256 over its sequence number, time, kind, subject, data and the
/// previous event's hash, each length-prefixed so no two different events share an input.
pub fn event_hash(
    seq: i64,
    at: DateTime<Utc>,
    kind: &str,
    subject: &str,
    data: &str,
    prev_hash: &str,
) -> String {
    let at = at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut hasher = Sha256::new();
    for field in [
        seq.to_string().as_str(),
        at.as_str(),
        kind,
        subject,
        data,
        prev_hash,
    ] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
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
    /// The event's content does not match its hash: it was changed.
    HashMismatch,
    /// The event does not point at the event before it: one was removed or the order changed.
    PrevHashMismatch,
    /// Sequence numbers jump: events were removed.
    SequenceGap { expected: i64 },
}

impl fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            BrokenReason::HashMismatch => write!(
                f,
                "event {} was changed: its content does not match its hash",
                self.seq
            ),
            BrokenReason::PrevHashMismatch => write!(
                f,
                "event {} does not follow the event before it: an event was removed or reordered",
                self.seq
            ),
            BrokenReason::SequenceGap { expected } => write!(
                f,
                "event {expected} is missing: the next event found is {}",
                self.seq
            ),
        }
    }
}

/// Checks a chain given in sequence order; returns the number of events checked, or the first
/// broken link.
pub fn verify<'a>(events: impl IntoIterator<Item = &'a Event>) -> Result<u64, BrokenLink> {
    let mut prev_hash = GENESIS.to_owned();
    let mut checked = 0;
    for (expected_seq, event) in (1..).zip(events) {
        if event.seq != expected_seq {
            return Err(BrokenLink {
                seq: event.seq,
                reason: BrokenReason::SequenceGap {
                    expected: expected_seq,
                },
            });
        }
        let hash = event_hash(
            event.seq,
            event.at,
            &event.kind,
            &event.subject,
            &event.data,
            &event.prev_hash,
        );
        if hash != event.hash {
            return Err(BrokenLink {
                seq: event.seq,
                reason: BrokenReason::HashMismatch,
            });
        }
        if event.prev_hash != prev_hash {
            return Err(BrokenLink {
                seq: event.seq,
                reason: BrokenReason::PrevHashMismatch,
            });
        }
        prev_hash = event.hash.clone();
        checked += 1;
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Event> {
        let mut prev = GENESIS.to_owned();
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("valid time");
        (1..=n)
            .map(|seq| {
                let data = format!("{{\"n\":{seq}}}");
                let hash = event_hash(seq, at, "scan.completed", "scan", &data, &prev);
                let event = Event {
                    seq,
                    at,
                    kind: "scan.completed".into(),
                    subject: "scan".into(),
                    data,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                event
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn changed_event_is_found() {
        let mut events = chain(5);
        events[2].data = "{\"n\":99}".into();
        assert_eq!(
            verify(&events).map_err(|it| (it.seq, it.reason)),
            Err((3, BrokenReason::HashMismatch))
        );
    }

    #[test]
    fn removed_event_is_found() {
        let mut events = chain(5);
        events.remove(1);
        let err = verify(&events).unwrap_err();
        assert_eq!(err.seq, 3);
    }

    #[test]
    fn reordered_events_are_found() {
        let mut events = chain(5);
        events.swap(1, 2);
        let (a, b) = (events[1].seq, events[2].seq);
        events[1].seq = b;
        events[2].seq = a;
        assert!(verify(&events).is_err());
    }

    #[test]
    fn fields_cannot_shift_between_each_other() {
        let at = DateTime::from_timestamp(0, 0).expect("valid time");
        assert_ne!(
            event_hash(1, at, "ab", "c", "{}", GENESIS),
            event_hash(1, at, "a", "bc", "{}", GENESIS)
        );
    }
}
