//! The audit log on SQLite: every ledger change is an event in the same transaction, the keyed
//! chain detects tampering and re-chaining, checkpoints detect a cut-off tail, the legacy upgrade.

use crate::store::Scans;
use chrono::{TimeZone, Utc};
use keywarden_connector::{CredentialKind, CredentialStatus, Inventory, LastUse};

use super::super::SqliteStore;
use super::*;
use crate::audit::{AuditFailure, BrokenReason, CheckpointError, legacy_event_hash};
use crate::ledger::fixtures;
use crate::store::SourceDiff;
use crate::store::audit_key::default_key_file;

fn t(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn key(byte: u8) -> AuditKey {
    AuditKey::from_bytes([byte; 32])
}

fn inventory(names: &[&str]) -> Inventory {
    let mut inventory = Inventory::default();
    for name in names {
        let it = fixtures::credential("keys", name, CredentialKind::PublicKey, t(1));
        inventory.identities.push(it.identity);
        inventory.credentials.push(it.credential);
    }
    inventory
}

async fn scan(store: &SqliteStore, at: DateTime<Utc>, inventory: &Inventory) -> SourceDiff {
    let sources = [("keys".to_owned(), "files".to_owned())];
    let id = store.begin_scan(at, &sources).await.expect("begin");
    let diff = store
        .record_inventory(id, "keys", inventory, at)
        .await
        .expect("record");
    store.finish_scan(id, at, false).await.expect("finish");
    diff
}

async fn count(store: &SqliteStore, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&store.pool)
        .await
        .expect("count")
}

/// Three scans: everything first seen; then a status, a last use and an owner change and one
/// credential gone; then the gone one back.
async fn ledger_with_every_change(store: &SqliteStore) {
    let mut inv = inventory(&["a", "b", "c"]);
    scan(store, t(1), &inv).await;
    inv.credentials[0].status = CredentialStatus::Inactive;
    inv.credentials[1].last_used = LastUse::At {
        at: t(2),
        source: "usage_log".into(),
    };
    inv.credentials[1].owner = Some("team-b".into());
    inv.identities[1].owner = Some("team-b".into());
    let without_c = Inventory {
        identities: inv.identities[..2].to_vec(),
        credentials: inv.credentials[..2].to_vec(),
        errors: Vec::new(),
        ..Inventory::default()
    };
    scan(store, t(3), &without_c).await;
    scan(store, t(4), &inv).await;
}

#[tokio::test]
async fn every_ledger_change_of_a_scan_has_its_event() {
    let store = SqliteStore::in_memory().await.expect("store");
    ledger_with_every_change(&store).await;

    type Row = (String, i64, String, Option<String>, Option<String>, String);
    let history: Vec<Row> = sqlx::query_as(
        "SELECT c.external_id, h.scan_id, h.change, h.old_value, h.new_value, h.at \
             FROM credential_history h JOIN credentials c ON c.id = h.credential_id ORDER BY h.id",
    )
    .fetch_all(&store.pool)
    .await
    .expect("history");
    let changes: Vec<&str> = history.iter().map(|it| it.2.as_str()).collect();
    for change in [
        "first_seen",
        "status",
        "last_used",
        "owner",
        "gone",
        "reappeared",
    ] {
        assert!(changes.contains(&change), "{change} missing: {changes:?}");
    }
    let events = store.events().await.expect("events");
    let credential_events: Vec<&Event> = events
        .iter()
        .filter(|it| it.kind.starts_with("credential."))
        .collect();
    assert_eq!(
        credential_events.len(),
        history.len(),
        "{credential_events:#?}"
    );
    for (external_id, scan, change, old, new, at) in &history {
        let expected = json!({ "scan": scan, "change": change, "old": old, "new": new });
        let found = credential_events.iter().any(|event| {
            event.subject == format!("keys/{external_id}")
                && serde_json::from_str::<serde_json::Value>(&event.data)
                    .ok()
                    .as_ref()
                    == Some(&expected)
                && event.at == DateTime::parse_from_rfc3339(at).expect("time")
        });
        assert!(found, "no event for history row {external_id} {change}");
    }
    let kinds: Vec<&str> = events.iter().map(|it| it.kind.as_str()).collect();
    for kind in [
        "credential.first_seen",
        "credential.status_changed",
        "credential.last_used_changed",
        "credential.owner_changed",
        "credential.gone",
        "credential.reappeared",
        "identity.first_seen",
        "identity.owner_changed",
        "identity.gone",
        "identity.reappeared",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    assert_eq!(
        store.verify_audit().await.expect("verify"),
        Ok(events.len() as u64)
    );
}

#[tokio::test]
async fn a_batch_whose_events_cannot_be_written_changes_nothing() {
    let store = SqliteStore::in_memory().await.expect("store");
    let scan_id = store
        .begin_scan(t(1), &[("keys".into(), "files".into())])
        .await
        .expect("begin");
    sqlx::query(
        "CREATE TRIGGER no_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'no'); END",
    )
    .execute(&store.pool)
    .await
    .expect("trigger");
    let mut recorder = store
        .record_source(scan_id, "keys", t(1))
        .await
        .expect("recorder");
    // A batch may wait for its group; the group is written at the latest by `finish`.
    recorder
        .batch(&inventory(&["a", "b"]))
        .await
        .expect("buffered");
    assert!(recorder.finish().await.is_err());
    // The ledger change and its history went with the events: one transaction.
    assert_eq!(count(&store, "SELECT COUNT(*) FROM credentials").await, 0);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM identities").await, 0);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM credential_history").await,
        0
    );
}

async fn rewrite(store: &SqliteStore, hash: impl Fn(&Event, &str) -> String) {
    let events = store.events().await.expect("events");
    let mut prev = crate::audit::GENESIS.to_owned();
    for event in events {
        let new = hash(&event, &prev);
        sqlx::query("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?")
            .bind(&prev)
            .bind(&new)
            .bind(event.seq)
            .execute(&store.pool)
            .await
            .expect("rewrite");
        prev = new;
    }
}

#[tokio::test]
async fn a_log_re_chained_without_the_key_is_detected() {
    let store = SqliteStore::in_memory_with_key(&key(1))
        .await
        .expect("store");
    ledger_with_every_change(&store).await;
    let total = store.events().await.expect("events").len() as i64;

    // With another key.
    let other = ChainKeys::derive(&key(2));
    rewrite(&store, |it, prev| {
        other.event_hash(it.seq, it.at, &it.kind, &it.subject, &it.data, prev)
    })
    .await;
    let broken = store.verify_audit().await.expect("verify").unwrap_err();
    assert_eq!((broken.seq, broken.reason), (1, BrokenReason::HashMismatch));

    // With plain SHA-256, even when the whole log is declared legacy.
    rewrite(&store, |it, prev| {
        legacy_event_hash(it.seq, it.at, &it.kind, &it.subject, &it.data, prev)
    })
    .await;
    let broken = store.verify_audit().await.expect("verify").unwrap_err();
    assert_eq!((broken.seq, broken.reason), (1, BrokenReason::HashMismatch));
    sqlx::query("UPDATE audit_meta SET legacy_through = ?")
        .bind(total)
        .execute(&store.pool)
        .await
        .expect("boundary");
    let broken = store.verify_audit().await.expect("verify").unwrap_err();
    assert_eq!(
        broken.reason,
        BrokenReason::MissingKeyedMarker {
            legacy_through: total
        }
    );
}

#[tokio::test]
async fn verification_streams_pages_and_finds_a_change_deep_in_the_log() {
    let store = SqliteStore::in_memory().await.expect("store");
    let n = EVENT_PAGE as usize * 2 + 500;
    let mut tx = store.pool.begin().await.expect("tx");
    let events = (0..n)
        .map(|i| NewEvent::new("test.event", format!("s/{i}"), json!({ "i": i })))
        .collect();
    append_events(&mut tx, &store.keys, t(1), events)
        .await
        .expect("append");
    tx.commit().await.expect("commit");
    assert_eq!(store.verify_audit().await.expect("verify"), Ok(n as u64));
    sqlx::query("UPDATE events SET subject = 'forged' WHERE seq = ?")
        .bind(EVENT_PAGE as i64 + 7)
        .execute(&store.pool)
        .await
        .expect("tamper");
    let broken = store.verify_audit().await.expect("verify").unwrap_err();
    assert_eq!(
        (broken.seq, broken.reason),
        (EVENT_PAGE as i64 + 7, BrokenReason::HashMismatch)
    );
}

#[tokio::test]
async fn a_keyed_events_time_is_checked_as_stored_text() {
    let store = SqliteStore::in_memory().await.expect("store");
    let mut tx = store.pool.begin().await.expect("tx");
    let events = (0..3)
        .map(|i| NewEvent::new("test.event", format!("s/{i}"), json!({ "i": i })))
        .collect();
    append_events(&mut tx, &store.keys, t(1), events)
        .await
        .expect("append");
    tx.commit().await.expect("commit");
    let stored: String = sqlx::query_scalar("SELECT at FROM events WHERE seq = 2")
        .fetch_one(&store.pool)
        .await
        .expect("at");
    assert_eq!(stored, crate::audit::event_time_text(t(1)));
    assert_eq!(store.verify_audit().await.expect("verify"), Ok(3));
    // The same instant written another way is still a rewritten event.
    let same_instant = stored.replace('Z', "+00:00");
    sqlx::query("UPDATE events SET at = ? WHERE seq = 2")
        .bind(&same_instant)
        .execute(&store.pool)
        .await
        .expect("tamper");
    let broken = store.verify_audit().await.expect("verify").unwrap_err();
    assert_eq!((broken.seq, broken.reason), (2, BrokenReason::HashMismatch));
}

#[tokio::test]
async fn the_newest_events_cut_off_after_a_checkpoint_are_detected() {
    let store = SqliteStore::in_memory().await.expect("store");
    scan(&store, t(1), &inventory(&["a", "b"])).await;
    let head = store
        .verify_audit_with(None)
        .await
        .expect("verify")
        .expect("intact")
        .head;
    let checkpoint = store.audit_checkpoint(&head, t(1));
    scan(&store, t(2), &inventory(&["a"])).await;
    let verified = store
        .verify_audit_with(Some(&checkpoint))
        .await
        .expect("verify")
        .expect("intact");
    assert_eq!(verified.checkpoint, Some(head.seq));

    // Cut back to before the checkpoint: the chain itself is intact, the checkpoint is not reached.
    sqlx::query("DELETE FROM events WHERE seq >= ?")
        .bind(head.seq - 1)
        .execute(&store.pool)
        .await
        .expect("cut");
    assert!(store.verify_audit().await.expect("verify").is_ok());
    let failure = store
        .verify_audit_with(Some(&checkpoint))
        .await
        .expect("verify")
        .unwrap_err();
    assert_eq!(
        failure,
        AuditFailure::Broken(BrokenLink {
            seq: head.seq - 2,
            reason: BrokenReason::Truncated {
                checkpoint: head.seq
            }
        })
    );

    let mut forged = checkpoint.clone();
    forged.seq = 1;
    assert_eq!(
        store
            .verify_audit_with(Some(&forged))
            .await
            .expect("verify"),
        Err(AuditFailure::Checkpoint(CheckpointError::Forged))
    );
}

#[tokio::test]
async fn a_store_opens_only_with_the_key_its_log_is_keyed_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open_with_key(&path, &key(1))
        .await
        .expect("open");
    scan(&store, t(1), &inventory(&["a"])).await;
    store.close().await;
    let err = SqliteStore::open_with_key(&path, &key(2))
        .await
        .expect_err("another key");
    assert!(matches!(err, StoreError::AuditKey(_)), "{err}");
    assert!(!err.to_string().contains(&*key(2).to_hex()), "{err}");
    // No key file beside it: `open` refuses to make a new key for a keyed log.
    let err = SqliteStore::open(&path).await.expect_err("no key file");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!default_key_file(&path).exists());
    let store = SqliteStore::open_with_key(&path, &key(1))
        .await
        .expect("reopen");
    assert!(store.verify_audit().await.expect("verify").is_ok());
}

#[tokio::test]
async fn open_creates_a_0600_key_file_once_and_refuses_a_readable_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open(&path).await.expect("open");
    scan(&store, t(1), &inventory(&["a"])).await;
    store.close().await;
    let key_file = default_key_file(&path);
    assert_eq!(key_file, dir.path().join("ledger.db.audit-key"));
    let mode = std::fs::metadata(&key_file)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let text = std::fs::read_to_string(&key_file).expect("read");
    let key = AuditKey::parse(&text).expect("a key");
    // The same key again, and it verifies the log.
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert!(store.verify_audit().await.expect("verify").is_ok());
    store.close().await;
    assert_eq!(std::fs::read_to_string(&key_file).expect("read"), text);
    let store = SqliteStore::open_with_key(&path, &key)
        .await
        .expect("explicit");
    store.close().await;

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let err = SqliteStore::open(&path)
        .await
        .expect_err("readable by group");
    assert!(err.to_string().contains("chmod 600"), "{err}");
    assert!(!err.to_string().contains(text.trim()), "{err}");

    // Neither the key nor its bytes are in the database.
    let mut db = std::fs::read(&path).expect("db");
    db.extend(std::fs::read(dir.path().join("ledger.db-wal")).unwrap_or_default());
    let hex = key.to_hex();
    assert!(!db.windows(hex.len()).any(|it| it == hex.as_bytes()));
    let raw = hex::decode(hex.as_str()).expect("hex");
    assert!(!db.windows(raw.len()).any(|it| it == raw.as_slice()));
}

/// A store written before the chain was keyed: the first three migrations, and a plain SHA-256
/// chain written as the old version did.
async fn legacy_store(path: &std::path::Path, events: i64) {
    let migrations = tempfile::tempdir().expect("tempdir");
    for name in [
        "0001_ledger.sql",
        "0002_findings_last_scan.sql",
        "0003_actions.sql",
    ] {
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src/store/migrations/sqlite")
                .join(name),
            migrations.path().join(name),
        )
        .expect("copy migration");
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await.expect("pool");
    sqlx::migrate::Migrator::new(migrations.path())
        .await
        .expect("migrator")
        .run(&pool)
        .await
        .expect("old schema");
    let mut prev = crate::audit::GENESIS.to_owned();
    for seq in 1..=events {
        let at = t(1);
        let data = format!("{{\"n\":{seq}}}");
        let hash = legacy_event_hash(seq, at, "scan.completed", "scan/1", &data, &prev);
        sqlx::query(
            "INSERT INTO events (seq, at, kind, subject, data, prev_hash, hash) \
             VALUES (?, ?, 'scan.completed', 'scan/1', ?, ?, ?)",
        )
        .bind(seq)
        .bind(crate::audit::event_time_text(at))
        .bind(&data)
        .bind(&prev)
        .bind(&hash)
        .execute(&pool)
        .await
        .expect("legacy event");
        prev = hash;
    }
    pool.close().await;
}

#[tokio::test]
async fn a_legacy_log_is_closed_by_the_keyed_marker_and_stays_verifiable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    legacy_store(&path, 4).await;
    let store = SqliteStore::open_with_key(&path, &key(1))
        .await
        .expect("upgrade");
    let events = store.events().await.expect("events");
    assert_eq!(events.len(), 5);
    assert_eq!(events[4].kind, KEYED_MARKER);
    scan(&store, t(2), &inventory(&["a"])).await;
    let verified = store
        .verify_audit_with(None)
        .await
        .expect("verify")
        .expect("intact");
    assert_eq!(verified.legacy, 4);
    assert!(verified.events > 5);
    store.close().await;
    // Reopening writes no second marker.
    let store = SqliteStore::open_with_key(&path, &key(1))
        .await
        .expect("reopen");
    let markers = store
        .events()
        .await
        .expect("events")
        .iter()
        .filter(|it| it.kind == KEYED_MARKER)
        .count();
    assert_eq!(markers, 1);

    // A legacy event changed and re-chained with plain SHA-256 up to the marker: the marker's
    // keyed commitment to the legacy head no longer holds.
    rewrite(&store, |it, prev| {
        if it.seq <= 4 {
            let data = if it.seq == 2 {
                "{\"n\":99}"
            } else {
                it.data.as_str()
            };
            legacy_event_hash(it.seq, it.at, &it.kind, &it.subject, data, prev)
        } else {
            it.hash.clone()
        }
    })
    .await;
    sqlx::query("UPDATE events SET data = '{\"n\":99}' WHERE seq = 2")
        .execute(&store.pool)
        .await
        .expect("tamper");
    let broken = store.verify_audit().await.expect("verify").unwrap_err();
    assert_eq!(broken.seq, 5);
}
