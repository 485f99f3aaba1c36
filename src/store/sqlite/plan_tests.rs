//! The statements a scan runs once per batch or page, and the due-action query, read through an
//! index: no plan step scans a table that grows with the ledger. `EXPLAIN QUERY PLAN` on a
//! migrated store, with as many parameters bound as each statement has.

use super::control::DUE_ACTIONS;
use super::findings::stored_findings_query;
use super::ledger::{
    FIND_CREDENTIAL, find_credentials_query, identities_credentials_query, identity_counts_query,
    source_credentials_query,
};
use super::{BATCH, SqliteStore};
use crate::store::Observation;

async fn plan(store: &SqliteStore, sql: &str) -> Vec<String> {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(explain));
    for _ in 0..sql.matches('?').count() {
        query = query.bind("x");
    }
    let rows = query.fetch_all(&store.pool).await.expect("plan");
    rows.into_iter().map(|(_, _, _, detail)| detail).collect()
}

/// Every step that scans reads a list of constant rows (the chunk), never a stored table, and no
/// step builds an automatic index (which reads the whole table each time).
fn assert_indexed(plan: &[String], what: &str) {
    assert!(!plan.is_empty(), "{what}: no plan");
    for step in plan {
        assert!(
            !step.contains("AUTOMATIC"),
            "{what} indexes a table on the fly: {step}"
        );
        let scans_table = step.starts_with("SCAN ")
            && !step.contains("CONSTANT ROW")
            && !matches!(step.as_str(), "SCAN obs" | "SCAN ids");
        assert!(
            !scans_table,
            "{what} scans a table: {step} (plan: {plan:?})"
        );
    }
}

#[tokio::test]
async fn observed_findings_are_looked_up_by_their_unique_key() {
    let store = SqliteStore::in_memory().await.expect("store");
    let obs = |id: &str| Observation {
        source: "s".to_owned(),
        credential_external_id: id.to_owned(),
        policy_id: "p".to_owned(),
        severity: "high".to_owned(),
        reason: "r".to_owned(),
    };
    // As many as a chunk holds: SQLite plans a long VALUES list differently from a short one.
    let chunk: Vec<Observation> = (0..BATCH / 3).map(|i| obs(&format!("k{i}"))).collect();
    let query = stored_findings_query(&chunk);
    let plan = plan(&store, query.sql().as_str()).await;
    assert_indexed(&plan, "stored findings");
    assert!(
        plan.iter()
            .any(|step| step.starts_with("SEARCH f USING INDEX sqlite_autoindex_findings_1")),
        "{plan:?}"
    );
}

#[tokio::test]
async fn identity_counts_are_read_from_the_identity_index_alone() {
    let store = SqliteStore::in_memory().await.expect("store");
    let chunk: Vec<(String, String)> = (0..BATCH / 2)
        .map(|i| ("s".to_owned(), format!("u{i}")))
        .collect();
    let query = identity_counts_query(&chunk);
    let plan = plan(&store, query.sql().as_str()).await;
    assert_indexed(&plan, "identity counts");
    assert!(
        plan.iter()
            .any(|step| step.contains("USING COVERING INDEX credentials_identity")),
        "{plan:?}"
    );
}

#[tokio::test]
async fn due_actions_read_the_due_index_only() {
    let store = SqliteStore::in_memory().await.expect("store");
    let plan = plan(&store, DUE_ACTIONS).await;
    assert_indexed(&plan, "due actions");
    assert_eq!(
        plan.iter()
            .filter(|step| step.contains("USING INDEX actions_due"))
            .count(),
        2,
        "{plan:?}"
    );
}

#[tokio::test]
async fn a_credential_is_found_by_its_external_id_through_an_index() {
    let store = SqliteStore::in_memory().await.expect("store");
    let plan = plan(&store, FIND_CREDENTIAL).await;
    assert_indexed(&plan, "find credential");
    assert!(
        plan.iter()
            .any(|step| step.contains("USING INDEX credentials_external_id")),
        "{plan:?}"
    );
    let chunk: Vec<String> = (0..BATCH).map(|i| format!("AKIA{i}")).collect();
    let query = find_credentials_query(&chunk);
    let many = self::plan(&store, query.sql().as_str()).await;
    assert_indexed(&many, "find credentials");
    assert!(
        many.iter()
            .any(|step| step.contains("USING INDEX credentials_external_id")),
        "{many:?}"
    );
}

#[tokio::test]
async fn many_credentials_and_identities_of_a_source_are_read_through_their_indexes() {
    let store = SqliteStore::in_memory().await.expect("store");
    let chunk: Vec<String> = (0..BATCH).map(|i| format!("k{i}")).collect();
    let query = source_credentials_query("s", &chunk);
    let plan_of = plan(&store, query.sql().as_str()).await;
    assert_indexed(&plan_of, "source credentials");
    assert!(
        plan_of
            .iter()
            .any(|step| step.contains("USING INDEX sqlite_autoindex_credentials_1")),
        "{plan_of:?}"
    );
    let query = identities_credentials_query("s", &chunk);
    let plan_of = plan(&store, query.sql().as_str()).await;
    assert_indexed(&plan_of, "identities' credentials");
    assert!(
        plan_of
            .iter()
            .any(|step| step.contains("USING INDEX credentials_identity")),
        "{plan_of:?}"
    );
}

/// The signers are read in the order the fingerprints are stored: no temporary B-tree sorts every
/// signing credential's JSON (held in memory: it doubled a scan's peak of 100,000 credentials).
#[tokio::test]
async fn signers_are_read_without_sorting_their_rows() {
    let store = SqliteStore::in_memory().await.expect("store");
    let plan = plan(&store, &super::trust::signers_query()).await;
    assert!(!plan.is_empty(), "no plan");
    assert!(
        plan.iter().all(|step| !step.contains("TEMP B-TREE")),
        "{plan:?}"
    );
    assert!(
        plan.iter().all(|step| !step.contains("AUTOMATIC")),
        "{plan:?}"
    );
}
