use super::*;

fn keys(byte: u8) -> ChainKeys {
    ChainKeys::derive(&AuditKey::from_bytes([byte; 32]))
}

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("valid time")
}

/// Appends `n` events to `events`, legacy (unkeyed) ones when `keys` is `None`.
fn extend(events: &mut Vec<Event>, keys: Option<&ChainKeys>, n: i64) {
    for _ in 0..n {
        let (seq, prev) = events
            .last()
            .map_or((1, GENESIS.to_owned()), |it| (it.seq + 1, it.hash.clone()));
        let data = format!("{{\"n\":{seq}}}");
        push(events, keys, seq, "scan.completed", &data, &prev);
    }
}

fn push(
    events: &mut Vec<Event>,
    keys: Option<&ChainKeys>,
    seq: i64,
    kind: &str,
    data: &str,
    prev: &str,
) {
    let hash = match keys {
        Some(keys) => keys.event_hash(seq, at(), kind, "scan", data, prev),
        None => legacy_event_hash(seq, at(), kind, "scan", data, prev),
    };
    events.push(Event {
        seq,
        at: at(),
        kind: kind.into(),
        subject: "scan".into(),
        data: data.into(),
        prev_hash: prev.into(),
        hash,
    });
}

fn chain(n: i64) -> Vec<Event> {
    let mut events = Vec::new();
    extend(&mut events, Some(&keys(1)), n);
    events
}

/// `legacy` unkeyed events, the keyed marker, then `keyed` more keyed events.
fn upgraded(legacy: i64, keyed: i64) -> Vec<Event> {
    let mut events = Vec::new();
    extend(&mut events, None, legacy);
    let head = events.last().expect("legacy events").hash.clone();
    let data = keyed_marker_data(legacy, &head).to_string();
    push(
        &mut events,
        Some(&keys(1)),
        legacy + 1,
        KEYED_MARKER,
        &data,
        &head,
    );
    extend(&mut events, Some(&keys(1)), keyed);
    events
}

fn reason(result: Result<Verified, BrokenLink>) -> (i64, BrokenReason) {
    let err = result.expect_err("broken");
    (err.seq, err.reason)
}

#[test]
fn intact_chain_verifies() {
    let verified = verify(&keys(1), 0, &chain(5)).expect("intact");
    assert_eq!(verified.events, 5);
    assert_eq!(verified.head.seq, 5);
    assert_eq!(
        verify(&keys(1), 0, &[]).expect("empty").head,
        Head::genesis()
    );
}

#[test]
fn changed_event_is_found() {
    let mut events = chain(5);
    events[2].data = "{\"n\":99}".into();
    assert_eq!(
        reason(verify(&keys(1), 0, &events)),
        (3, BrokenReason::HashMismatch)
    );
}

#[test]
fn removed_event_is_found() {
    let mut events = chain(5);
    events.remove(1);
    assert_eq!(
        reason(verify(&keys(1), 0, &events)),
        (3, BrokenReason::SequenceGap { expected: 2 })
    );
}

#[test]
fn reordered_events_are_found() {
    let mut events = chain(5);
    events.swap(1, 2);
    let (a, b) = (events[1].seq, events[2].seq);
    events[1].seq = b;
    events[2].seq = a;
    assert_eq!(reason(verify(&keys(1), 0, &events)).0, 2);
}

#[test]
fn a_chain_recomputed_with_another_key_or_plain_sha256_is_found() {
    let mut other = Vec::new();
    extend(&mut other, Some(&keys(2)), 5);
    assert_eq!(
        reason(verify(&keys(1), 0, &other)),
        (1, BrokenReason::HashMismatch)
    );
    let mut unkeyed = Vec::new();
    extend(&mut unkeyed, None, 5);
    assert_eq!(
        reason(verify(&keys(1), 0, &unkeyed)),
        (1, BrokenReason::HashMismatch)
    );
    // Declaring the whole re-chained log legacy does not help: the keyed marker is missing.
    assert_eq!(
        reason(verify(&keys(1), 5, &unkeyed)),
        (5, BrokenReason::MissingKeyedMarker { legacy_through: 5 })
    );
}

#[test]
fn a_legacy_prefix_closed_by_the_keyed_marker_verifies() {
    let verified = verify(&keys(1), 3, &upgraded(3, 2)).expect("intact");
    assert_eq!((verified.events, verified.legacy), (6, 3));
}

#[test]
fn moving_the_legacy_boundary_breaks_the_chain() {
    let events = upgraded(3, 2);
    // Lower: the legacy events do not verify as keyed.
    assert_eq!(
        reason(verify(&keys(1), 2, &events)),
        (3, BrokenReason::HashMismatch)
    );
    assert_eq!(
        reason(verify(&keys(1), 0, &events)),
        (1, BrokenReason::HashMismatch)
    );
    // Higher: the marker does not verify as legacy.
    assert_eq!(
        reason(verify(&keys(1), 4, &events)),
        (4, BrokenReason::HashMismatch)
    );
}

#[test]
fn a_re_chained_tail_after_the_legacy_prefix_is_found() {
    // Every event after the prefix recomputed as legacy and the boundary moved to the end.
    let mut events = Vec::new();
    extend(&mut events, None, 6);
    assert_eq!(
        reason(verify(&keys(1), 6, &events)),
        (6, BrokenReason::MissingKeyedMarker { legacy_through: 6 })
    );
    // A keyed event that is not the marker right after the prefix.
    let mut events = Vec::new();
    extend(&mut events, None, 3);
    extend(&mut events, Some(&keys(1)), 2);
    assert_eq!(
        reason(verify(&keys(1), 3, &events)),
        (4, BrokenReason::NotKeyedMarker)
    );
}

#[test]
fn a_log_cut_off_after_a_checkpoint_is_found() {
    let keys = keys(1);
    let events = chain(5);
    let checkpoint = keys.checkpoint(
        &Head {
            seq: 5,
            hash: events[4].hash.clone(),
        },
        at(),
    );
    let mut verifier = Verifier::new(&keys, 0)
        .with_checkpoint(&checkpoint)
        .expect("authentic");
    for event in &events[..3] {
        verifier.push(event).expect("intact so far");
    }
    assert_eq!(
        reason(verifier.finish()),
        (3, BrokenReason::Truncated { checkpoint: 5 })
    );
    // The whole log, and a longer one, pass.
    let mut verifier = Verifier::new(&keys, 0)
        .with_checkpoint(&checkpoint)
        .expect("authentic");
    for event in &chain(7) {
        verifier.push(event).expect("intact");
    }
    assert_eq!(verifier.finish().expect("intact").checkpoint, Some(5));
}

#[test]
fn a_log_rewritten_before_a_checkpoint_is_found() {
    let keys = keys(1);
    let events = chain(5);
    let checkpoint = keys.checkpoint(
        &Head {
            seq: 4,
            hash: "f".repeat(64),
        },
        at(),
    );
    let mut verifier = Verifier::new(&keys, 0)
        .with_checkpoint(&checkpoint)
        .expect("authentic");
    let err = events
        .iter()
        .try_for_each(|it| verifier.push(it))
        .expect_err("mismatch");
    assert_eq!((err.seq, err.reason), (4, BrokenReason::CheckpointMismatch));
}

#[test]
fn a_forged_checkpoint_is_refused() {
    let keys = keys(1);
    let checkpoint = keys.checkpoint(
        &Head {
            seq: 5,
            hash: "a".repeat(64),
        },
        at(),
    );
    assert_eq!(keys.authenticate(&checkpoint), Ok(()));
    let mut forged = checkpoint.clone();
    forged.seq = 3;
    assert_eq!(keys.authenticate(&forged), Err(CheckpointError::Forged));
    let mut forged = checkpoint.clone();
    forged.hash = "b".repeat(64);
    assert_eq!(keys.authenticate(&forged), Err(CheckpointError::Forged));
    let mut forged = checkpoint.clone();
    forged.mac = "zz".into();
    assert_eq!(keys.authenticate(&forged), Err(CheckpointError::Forged));
    // Made with another key: named as such.
    let other = self::keys(2).checkpoint(
        &Head {
            seq: 5,
            hash: "a".repeat(64),
        },
        at(),
    );
    assert!(matches!(
        keys.authenticate(&other),
        Err(CheckpointError::OtherKey(_))
    ));
    // A checkpoint MAC is not an event hash (domain separation).
    assert_ne!(
        checkpoint.mac,
        keys.event_hash(5, at(), "", "", "", &"a".repeat(64))
    );
    assert!(Verifier::new(&keys, 0).with_checkpoint(&forged).is_err());
}

#[test]
fn fields_cannot_shift_between_each_other() {
    let at = DateTime::from_timestamp(0, 0).expect("valid time");
    let keys = keys(1);
    assert_ne!(
        keys.event_hash(1, at, "ab", "c", "{}", GENESIS),
        keys.event_hash(1, at, "a", "bc", "{}", GENESIS)
    );
    assert_ne!(
        legacy_event_hash(1, at, "ab", "c", "{}", GENESIS),
        legacy_event_hash(1, at, "a", "bc", "{}", GENESIS)
    );
}

#[test]
fn keys_parse_from_hex_and_base64_and_are_never_shown() {
    use base64::Engine as _;
    let bytes = [7u8; 32];
    let hex = hex::encode(bytes);
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let id = ChainKeys::derive(&AuditKey::from_bytes(bytes))
        .key_id()
        .to_owned();
    for text in [hex.clone(), format!(" {b64}\n")] {
        let key = AuditKey::parse(&text).expect("key");
        assert_eq!(ChainKeys::derive(&key).key_id(), id);
        assert_eq!(*key.to_hex(), hex);
        assert_eq!(format!("{key:?}"), "AuditKey(redacted)");
        assert!(!format!("{:?}", ChainKeys::derive(&key)).contains(&hex));
    }
    for bad in [
        "",
        "abc",
        &hex[..62],
        &base64::engine::general_purpose::STANDARD.encode([7u8; 16]),
    ] {
        let err = AuditKey::parse(bad).expect_err("not a key");
        assert!(!bad.is_empty() && !err.to_string().contains(bad) || bad.is_empty());
    }
    // The key id names the key without being it.
    assert!(!hex.contains(&id));
}
