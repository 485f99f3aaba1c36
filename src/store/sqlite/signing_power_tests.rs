//! A credential's signing power (`signs_with`): indexed for the holders' lookup, rewritten when
//! it changes (never a stale grant left behind), dropped when the credential is gone, and every
//! change an audit event.

use chrono::{DateTime, TimeZone, Utc};
use keywarden_connector::{CredentialKind, Inventory};

use super::*;
use crate::ledger::fixtures;
use crate::store::{AuditLog, Scans, SignerTrust};

fn t(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0)
        .single()
        .expect("time")
}

fn tokens(grants: &[(&str, &[&str])]) -> Inventory {
    let mut inventory = Inventory::default();
    for (name, signs_with) in grants {
        let mut it = fixtures::credential("vault", name, CredentialKind::Token, t(1));
        it.credential.signs_with = signs_with.iter().map(|it| (*it).to_owned()).collect();
        inventory.identities.push(it.identity);
        inventory.credentials.push(it.credential);
    }
    inventory
}

async fn scan(store: &SqliteStore, at: DateTime<Utc>, inventory: &Inventory) {
    let sources = [("vault".to_owned(), "vault".to_owned())];
    let id = store.begin_scan(at, &sources).await.expect("begin");
    store
        .record_inventory(id, "vault", inventory, at)
        .await
        .expect("record");
    store.finish_scan(id, at, false).await.expect("finish");
}

async fn holders(store: &SqliteStore) -> Vec<(String, Vec<String>)> {
    store
        .signing_holders()
        .await
        .expect("holders")
        .into_iter()
        .map(|it| (it.credential.name, it.credential.signs_with))
        .collect()
}

#[tokio::test]
async fn signing_power_follows_each_scan_and_each_change_is_audited() {
    let store = SqliteStore::in_memory().await.expect("store");
    scan(
        &store,
        t(1),
        &tokens(&[("a", &["k1"]), ("b", &[]), ("c", &["k1"])]),
    )
    .await;
    assert_eq!(
        holders(&store).await,
        [
            ("a".to_owned(), vec!["k1".to_owned()]),
            ("c".to_owned(), vec!["k1".to_owned()])
        ]
    );
    // a's policy now grants k2 instead, b gains k1, c is gone.
    scan(&store, t(2), &tokens(&[("a", &["k2"]), ("b", &["k1"])])).await;
    assert_eq!(
        holders(&store).await,
        [
            ("a".to_owned(), vec!["k2".to_owned()]),
            ("b".to_owned(), vec!["k1".to_owned()])
        ]
    );
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT c.external_id FROM signing_power p JOIN credentials c ON c.id = p.credential_id \
         WHERE p.key_id = 'k1' AND c.status != 'gone'",
    )
    .fetch_all(&store.pool)
    .await
    .expect("rows");
    assert_eq!(
        rows,
        [("credential:b".to_owned(),)],
        "a's old grant is gone"
    );
    let changes: Vec<(String, String)> = store
        .events()
        .await
        .expect("events")
        .into_iter()
        .filter(|it| it.kind == "credential.signing_power_changed")
        .map(|it| (it.subject, it.data))
        .collect();
    assert_eq!(changes.len(), 2, "{changes:#?}");
    assert!(changes[0].0.ends_with("credential:a"), "{changes:?}");
    assert!(changes[0].1.contains(r#""old":"k1""#), "{}", changes[0].1);
    assert!(changes[0].1.contains(r#""new":"k2""#), "{}", changes[0].1);
    assert!(changes[1].0.ends_with("credential:b"), "{changes:?}");
}
