//! Guarded enforcement and incident control against moto: the scope of a run, live re-checks,
//! caps and halts, approvals, pre-emption of a rotation by a containment, playbooks, retries.
//!
//! Each test works in a moto account of its own (see tests/moto). Without
//! `KEYWARDEN_TEST_MOTO_URL` they skip, unless `KEYWARDEN_REQUIRE_PEERS=1`.

mod common;
mod moto;

use std::collections::BTreeMap;

use aws_sdk_iam::types::StatusType;
use chrono::Utc;
use serde_json::{Value, json};

use common::{stderr, stdout};
use moto::*;

/// Disables active keys unused for 45 days (the finding stays while the key is unused, whatever
/// its status, so later runs see the finding of a key already acted on).
fn disable_unused(enforce: &str) -> String {
    format!(
        "policies:\n  - id: disable-unused\n    severity: medium\n    mode: enforce\n    select:\n      kinds: [access_key]\n    when:\n      unused_for: 45d\n    actions: [notify, disable]\n{enforce}"
    )
}

fn planned(report: &Value) -> Vec<Value> {
    report["planned_actions"]
        .as_array()
        .expect("planned_actions")
        .clone()
}

fn decision_of<'a>(planned: &'a [Value], credential: &str) -> &'a Value {
    planned
        .iter()
        .find(|it| it["credential"] == credential)
        .unwrap_or_else(|| panic!("{credential} not planned: {planned:#?}"))
}

fn count(planned: &[Value], decision: &str) -> usize {
    planned
        .iter()
        .filter(|it| it["decision"] == decision)
        .count()
}

fn actions_of(ws: &Workspace, account: &Account) -> Vec<Value> {
    ws.json(account, &["actions", "list", "--format", "json"])
        .as_array()
        .expect("actions")
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enforcing_policy_acts_once_and_then_reports_the_earlier_action() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("dormant", "/", &[]).await;
    let unused = account.key("dormant", 200, Some(100)).await;
    let busy = account.key("dormant", 20, Some(1)).await;
    let ws = Workspace::with_policies(&account, "", "", &disable_unused(""));

    let report = ws.scan(&account);
    let first = planned(&report);
    assert_eq!(first.len(), 1, "{first:#?}");
    assert_eq!(first[0]["credential"], unused.as_str());
    assert_eq!(first[0]["decision"], "started");
    assert_eq!(first[0]["action_status"], "done");
    assert_eq!(
        account.keys("dormant").await,
        BTreeMap::from([(unused.clone(), false), (busy.clone(), true)])
    );

    // The key is still unused, so the finding holds; the guard against acting twice answers.
    let again = planned(&ws.scan(&account));
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0]["decision"], "already_acted", "{again:#?}");
    assert_eq!(again[0]["action_id"], first[0]["action_id"]);
    let listed = actions_of(&ws, &account);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["origin"], "policy:disable-unused");
}

#[tokio::test(flavor = "multi_thread")]
async fn enforcement_acts_on_nobody_of_a_user_whose_inventory_failed() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("broken", "/", &[]).await;
    let broken = account.key("broken", 200, Some(100)).await;
    account.user("fine", "/", &[]).await;
    let fine = account.key("fine", 200, Some(100)).await;
    // Every scan a full one, so each user's keys are listed user by user.
    let ws = Workspace::with_policies(&account, "    full_refresh: 0s\n", "", &disable_unused(""));
    let evaluated = ws.scan_with(&account, &["--no-enforce"]);
    assert!(planned(&evaluated).is_empty(), "--no-enforce plans nothing");
    assert_eq!(
        account.keys("broken").await,
        BTreeMap::from([(broken.clone(), true)])
    );

    account
        .deny(Some("broken"), &["ListAccessKeys", "GetAccessKeyLastUsed"])
        .await;
    let report = ws.scan(&account);
    let errors = report["errors"].as_array().expect("errors");
    assert!(
        errors.iter().any(|it| it["subject"]
            .as_str()
            .is_some_and(|it| it.starts_with("broken"))),
        "{errors:#?}"
    );
    let planned = planned(&report);
    let stale = decision_of(&planned, &broken);
    assert_eq!(stale["decision"], "stale", "{planned:#?}");
    assert!(
        stale["reason"]
            .as_str()
            .is_some_and(|it| it.contains("inventory of broken")),
        "{stale:#?}"
    );
    assert_eq!(
        decision_of(&planned, &fine)["decision"],
        "started",
        "{planned:#?} {errors:#?}"
    );
    // (The test reads keys with keywarden's credentials too: lift the denial first.)
    account.deny(Some("broken"), &[]).await;
    assert_eq!(
        account.keys("broken").await,
        BTreeMap::from([(broken, true)])
    );
    assert_eq!(account.keys("fine").await, BTreeMap::from([(fine, false)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_active_key_per_user_enforced_disables_one_key_and_keeps_the_other() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("two", "/", &[]).await;
    let first = account.key("two", 200, Some(1)).await;
    let second = account.key("two", 100, Some(1)).await;
    // CIS 1.13 enforced: both keys have the finding; once one is off, the other's live re-check
    // counts one active key and is skipped, so the user keeps a working key.
    let policy = "policies:\n  - id: one-active-key\n    severity: medium\n    mode: enforce\n    select:\n      kinds: [access_key]\n    when:\n      status: [active]\n      identity_credentials: { kinds: [access_key], status: [active], more_than: 1 }\n    actions: [disable]\n";
    let ws = Workspace::with_policies(&account, "", "", policy);
    let planned = planned(&ws.scan(&account));
    let statuses: Vec<&str> = [&first, &second]
        .iter()
        .map(|key| {
            decision_of(&planned, key)["action_status"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["done", "skipped"], "{planned:#?}");
    let keys = account.keys("two").await;
    assert_eq!(
        keys.values().filter(|active| **active).count(),
        1,
        "exactly one key stays active: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_required_changes_nothing_before_approve_and_reject_ends_it() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("a", "/", &[]).await;
    let first = account.key("a", 200, Some(100)).await;
    account.user("b", "/", &[]).await;
    let second = account.key("b", 200, Some(100)).await;
    let policy = disable_unused("    enforce:\n      approval: required\n");
    let ws = Workspace::with_policies(&account, "", "", &policy);

    let planned = planned(&ws.scan(&account));
    assert_eq!(count(&planned, "started"), 2, "{planned:#?}");
    assert!(
        planned
            .iter()
            .all(|it| it["action_status"] == "awaiting_approval")
    );
    assert_eq!(
        account.keys("a").await,
        BTreeMap::from([(first.clone(), true)])
    );
    assert_eq!(
        account.keys("b").await,
        BTreeMap::from([(second.clone(), true)])
    );
    // Another run changes nothing either, and starts no second action.
    let again = self::planned(&ws.scan(&account));
    assert_eq!(count(&again, "in_progress"), 2, "{again:#?}");
    assert_eq!(
        account.keys("a").await,
        BTreeMap::from([(first.clone(), true)])
    );

    let id = |credential: &str| {
        decision_of(&planned, credential)["action_id"]
            .as_i64()
            .expect("id")
            .to_string()
    };
    let approved = ws.json(
        &account,
        &[
            "actions",
            "approve",
            &id(&first),
            "--by",
            "alice",
            "--format",
            "json",
        ],
    );
    assert_eq!(approved[0]["status"], "done", "{approved:#}");
    assert_eq!(
        account.keys("a").await,
        BTreeMap::from([(first.clone(), false)])
    );

    let rejected = ws.json(
        &account,
        &[
            "actions",
            "reject",
            &id(&second),
            "--by",
            "bob",
            "--reason",
            "in use",
            "--format",
            "json",
        ],
    );
    assert_eq!(rejected[0]["status"], "rejected", "{rejected:#}");
    assert_eq!(
        account.keys("b").await,
        BTreeMap::from([(second.clone(), true)])
    );
    // A rejected action is not started again by the next run.
    let after = self::planned(&ws.scan(&account));
    assert_eq!(decision_of(&after, &second)["decision"], "already_acted");
    assert_eq!(account.keys("b").await, BTreeMap::from([(second, true)]));
    // Approving twice is refused.
    let twice = ws.run(
        &account,
        &["actions", "approve", &id(&first), "--by", "x"],
        &[],
    );
    assert_eq!(twice.status.code(), Some(2), "{}", stderr(&twice));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_whose_condition_lapsed_before_the_step_ends_skipped() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("ci", "/", &[]).await;
    let key = account.key("ci", 200, Some(100)).await;
    let policy = disable_unused("    enforce:\n      approval: required\n");
    let ws = Workspace::with_policies(&account, "", "", &policy);
    let planned = planned(&ws.scan(&account));
    let id = decision_of(&planned, &key)["action_id"]
        .as_i64()
        .expect("id")
        .to_string();
    // While the action waits for approval, the key is used again: the ledger still says unused.
    account.used_at(&key, Utc::now()).await;
    let approved = ws.json(
        &account,
        &[
            "actions", "approve", &id, "--by", "alice", "--format", "json",
        ],
    );
    assert_eq!(approved[0]["status"], "skipped", "{approved:#}");
    assert!(
        approved[0]["reason"]
            .as_str()
            .is_some_and(|it| it.contains("no longer holds on the live state")),
        "{approved:#}"
    );
    assert_eq!(account.keys("ci").await, BTreeMap::from([(key, true)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cap_starts_ten_of_fifty_and_defers_forty() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.users_with_a_key("svc", 50, Some(100)).await;
    let policy =
        disable_unused("    enforce:\n      max_actions_per_run: 10\n      halt_share: 100%\n");
    let ws = Workspace::with_policies(
        &account,
        "",
        "enforcement:\n  max_actions_per_source: 100\n",
        &policy,
    );
    let report = ws.scan(&account);
    let planned = planned(&report);
    assert_eq!(planned.len(), 50);
    assert_eq!(count(&planned, "started"), 10, "{planned:#?}");
    assert_eq!(count(&planned, "deferred"), 40);
    assert!(
        planned
            .iter()
            .filter(|it| it["decision"] == "deferred")
            .all(|it| it["reason"]
                .as_str()
                .is_some_and(|it| it.contains("max_actions_per_run (10)")))
    );
    let mut inactive = 0;
    for i in 0..50 {
        let keys = account.keys(&format!("svc-{i}")).await;
        inactive += keys.values().filter(|active| !**active).count();
    }
    assert_eq!(inactive, 10);
    assert_eq!(actions_of(&ws, &account).len(), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_over_the_halt_share_acts_on_none_and_opens_a_critical_finding() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.users_with_a_key("old", 10, Some(100)).await;
    account.users_with_a_key("new", 2, Some(1)).await;
    let ws = Workspace::with_policies(&account, "", "", &disable_unused(""));
    let out = ws.run(
        &account,
        &["enforce", "--format", "json", "--no-progress"],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a halt fails the run: {}",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let items = report["items"].as_array().expect("items");
    assert_eq!(count(items, "halted"), 10, "{report:#}");
    assert_eq!(report["halts"][0]["would_act"], 10);
    assert_eq!(report["halts"][0]["credentials"], 12);
    for i in 0..10 {
        let keys = account.keys(&format!("old-{i}")).await;
        assert!(keys.values().all(|active| *active), "old-{i}: {keys:?}");
    }
    assert!(actions_of(&ws, &account).is_empty());
    let findings = ws.json(&account, &["findings", "list", "--format", "json"]);
    let halt = findings
        .as_array()
        .expect("findings")
        .iter()
        .find(|it| it["policy_id"] == "keywarden.enforcement-halted.disable-unused")
        .unwrap_or_else(|| panic!("no halt finding: {findings:#}"));
    assert_eq!(halt["severity"], "critical");
    assert_eq!(halt["status"], "open");
    // A later scan does not resolve it while the halt still holds.
    ws.scan(&account);
    let findings = ws.json(&account, &["findings", "list", "--format", "json"]);
    assert!(
        findings
            .as_array()
            .expect("findings")
            .iter()
            .any(
                |it| it["policy_id"] == "keywarden.enforcement-halted.disable-unused"
                    && it["status"] == "open"
            )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quarantine_pre_empts_a_rotation_in_its_overlap() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("ci", "/", &[]).await;
    let old = account.key("ci", 120, Some(1)).await;
    let ws = Workspace::with_file_delivery_timing(&account, "1h", "1h");
    ws.scan(&account);
    let rotated = ws.json(&account, &["rotate", &old, "--enforce", "--format", "json"]);
    assert_eq!(rotated[0]["status"], "waiting", "{rotated:#}");
    assert_eq!(rotated[0]["step"], "overlap");
    let new = ws.delivered("ci")["AccessKeyId"]
        .as_str()
        .expect("delivered key")
        .to_owned();
    assert_ne!(new, old);

    let quarantined = ws.json(
        &account,
        &["quarantine", &old, "--enforce", "--format", "json"],
    );
    assert_eq!(quarantined[0]["status"], "done", "{quarantined:#}");
    assert_eq!(
        account.keys("ci").await,
        BTreeMap::from([(old.clone(), false), (new.clone(), true)]),
        "the old key is off, the delivered new key is kept, and there is no third key"
    );
    assert_eq!(
        account.inline_policies("ci").await,
        ["KeywardenRevokeOlderSessions"]
    );
    let rotation = ws.json(
        &account,
        &[
            "actions",
            "show",
            &rotated[0]["id"].to_string(),
            "--format",
            "json",
        ],
    );
    assert_eq!(rotation["action"]["status"], "cancelled", "{rotation:#}");
    let reason = rotation["action"]["reason"].as_str().expect("reason");
    assert!(reason.contains("pre-empted by quarantine"), "{reason}");
    assert!(
        reason.contains(&format!("new key {new} was delivered")),
        "{reason}"
    );
    // Nothing is left to resume.
    let resumed = ws.json(&account, &["actions", "resume", "--format", "json"]);
    assert_eq!(resumed, json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enforcing_quarantine_policy_pre_empts_a_rotation_in_its_overlap() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("ci", "/", &[]).await;
    let old = account.key("ci", 120, Some(1)).await;
    let ws = Workspace::with_file_delivery_timing(&account, "1h", "1h");
    ws.scan(&account);
    let rotated = ws.json(&account, &["rotate", &old, "--enforce", "--format", "json"]);
    assert_eq!(rotated[0]["step"], "overlap", "{rotated:#}");
    // Only the old key is older than 90 days; the new one is minutes old.
    ws.use_policies(
        "policies:\n  - id: quarantine-old\n    severity: critical\n    mode: enforce\n    select:\n      kinds: [access_key]\n    when:\n      status: [active]\n      age_over: 90d\n    actions: [quarantine]\n",
    );
    let planned = planned(&ws.scan(&account));
    let item = decision_of(&planned, &old);
    assert_eq!(item["decision"], "started", "{planned:#?}");
    assert_eq!(item["action_status"], "done", "{planned:#?}");
    let new = ws.delivered("ci")["AccessKeyId"]
        .as_str()
        .expect("delivered key")
        .to_owned();
    assert_eq!(
        account.keys("ci").await,
        BTreeMap::from([(old, false), (new, true)])
    );
    let rotation = ws.json(
        &account,
        &[
            "actions",
            "show",
            &rotated[0]["id"].to_string(),
            "--format",
            "json",
        ],
    );
    assert_eq!(rotation["action"]["status"], "cancelled", "{rotation:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_rotation_before_delivery_leaves_no_orphan_key() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("ci", "/", &[]).await;
    let old = account.key("ci", 120, Some(1)).await;
    let ws = Workspace::with_file_delivery_timing(&account, "1h", "1h");
    ws.short_lease();
    ws.scan(&account);
    // The process dies right after the new key was recorded, before it was delivered.
    let crashed = ws.run(
        &account,
        &["rotate", &old, "--enforce"],
        &[("KEYWARDEN_CRASH_AFTER", "deliver_recorded")],
    );
    assert_ne!(crashed.status.code(), Some(0));
    assert_eq!(
        account.keys("ci").await.len(),
        2,
        "the undelivered key exists"
    );
    // The crashed process's lease runs out first.
    std::thread::sleep(SHORT_LEASE);
    let listed = actions_of(&ws, &account);
    let id = listed[0]["id"].to_string();
    let cancelled = ws.json(
        &account,
        &[
            "actions",
            "cancel",
            &id,
            "--reason",
            "wrong key",
            "--by",
            "alice",
            "--format",
            "json",
        ],
    );
    assert_eq!(cancelled[0]["status"], "cancelled", "{cancelled:#}");
    assert!(
        cancelled[0]["reason"]
            .as_str()
            .is_some_and(|it| it.contains("was never delivered and is deleted")),
        "{cancelled:#}"
    );
    assert_eq!(
        account.keys("ci").await,
        BTreeMap::from([(old, true)]),
        "only the old key is left, still active"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_containment_playbook_runs_its_children_and_resumes_after_a_crash() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("ci", "/", &[]).await;
    let leaked = account.key("ci", 30, Some(1)).await;
    let ws = Workspace::new(&account, "");
    ws.short_lease();
    ws.scan(&account);
    let dry = ws.ok(
        &account,
        &["contain", &leaked, "--reason", "found in a public repo"],
    );
    assert!(stdout(&dry).contains("Dry run"), "{}", stdout(&dry));
    assert_eq!(
        account.keys("ci").await,
        BTreeMap::from([(leaked.clone(), true)])
    );

    let crashed = ws.run(
        &account,
        &[
            "contain",
            &leaked,
            "--reason",
            "found in a public repo",
            "--enforce",
        ],
        &[("KEYWARDEN_CRASH_AFTER", "quarantine_deactivate")],
    );
    assert_ne!(crashed.status.code(), Some(0), "{}", stderr(&crashed));
    assert_eq!(
        account.keys("ci").await,
        BTreeMap::from([(leaked.clone(), false)])
    );

    std::thread::sleep(SHORT_LEASE);
    let resumed = ws.json(&account, &["actions", "resume", "--format", "json"]);
    let parent = resumed
        .as_array()
        .expect("resumed")
        .iter()
        .find(|it| it["kind"] == "contain")
        .unwrap_or_else(|| panic!("{resumed:#}"))
        .clone();
    assert_eq!(parent["status"], "done", "{resumed:#}");
    let all = actions_of(&ws, &account);
    let children: Vec<&Value> = all
        .iter()
        .filter(|it| it["parent"]["parent"] == parent["id"])
        .collect();
    assert_eq!(children.len(), 2, "{all:#?}");
    assert!(children.iter().all(|it| it["status"] == "done"), "{all:#?}");
    let kinds: Vec<&str> = {
        let mut it: Vec<(&Value, &str)> = children
            .iter()
            .map(|c| {
                (
                    &c["parent"]["index"],
                    c["kind"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        it.sort_by_key(|(index, _)| index.as_i64());
        it.into_iter().map(|(_, kind)| kind).collect()
    };
    assert_eq!(kinds, ["quarantine", "raise_finding"]);
    let findings = ws.json(&account, &["findings", "list", "--format", "json"]);
    let finding = findings
        .as_array()
        .expect("findings")
        .iter()
        .find(|it| it["policy_id"] == "keywarden.containment")
        .unwrap_or_else(|| panic!("{findings:#}"));
    assert_eq!(finding["severity"], "critical");
    assert!(
        finding["reason"]
            .as_str()
            .is_some_and(|it| it.contains("found in a public repo"))
    );
    assert_eq!(
        account.inline_policies("ci").await,
        ["KeywardenRevokeOlderSessions"]
    );
    // The next scan does not resolve keywarden's own finding.
    ws.scan(&account);
    let findings = ws.json(&account, &["findings", "list", "--format", "json"]);
    assert!(
        findings
            .as_array()
            .expect("findings")
            .iter()
            .any(|it| it["policy_id"] == "keywarden.containment" && it["status"] == "open")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_policy_action_is_retried_after_its_back_off_then_stays_failed() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("ci", "/", &[]).await;
    let key = account.key("ci", 200, Some(100)).await;
    let policy = disable_unused("    enforce:\n      retry: { attempts: 1, backoff: 0s }\n");
    let ws = Workspace::with_policies(&account, "", "", &policy);
    account.deny(None, &["UpdateAccessKey"]).await;
    let first = planned(&ws.scan(&account));
    assert_eq!(first[0]["decision"], "started");
    assert_eq!(first[0]["action_status"], "failed", "{first:#?}");
    let second = planned(&ws.scan(&account));
    assert_eq!(second[0]["decision"], "retried", "{second:#?}");
    assert_eq!(second[0]["action_status"], "failed");
    let third = planned(&ws.scan(&account));
    assert_eq!(third[0]["decision"], "failed", "{third:#?}");
    assert!(
        third[0]["reason"]
            .as_str()
            .is_some_and(|it| it.contains("failed after 1 retries")),
        "{third:#?}"
    );
    assert_eq!(
        account.keys("ci").await,
        BTreeMap::from([(key.clone(), true)])
    );

    // Once the cause is gone, a person retries it.
    account.deny(None, &[]).await;
    let id = first[0]["action_id"].to_string();
    let retried = ws.json(&account, &["actions", "retry", &id, "--format", "json"]);
    assert_eq!(retried[0]["status"], "done", "{retried:#}");
    assert_eq!(retried[0]["attempts"], 2);
    assert_eq!(account.keys("ci").await, BTreeMap::from([(key, false)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_action_whose_policy_now_requires_approval_retries_into_approval() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("ci", "/", &[]).await;
    let key = account.key("ci", 200, Some(100)).await;
    let ws = Workspace::with_policies(
        &account,
        "",
        "",
        &disable_unused("    enforce:\n      retry: { attempts: 3, backoff: 0s }\n"),
    );
    account.deny(None, &["UpdateAccessKey"]).await;
    let first = planned(&ws.scan(&account));
    assert_eq!(first[0]["action_status"], "failed", "{first:#?}");
    account.deny(None, &[]).await;

    ws.use_policies(&disable_unused(
        "    enforce:\n      approval: required\n      retry: { attempts: 3, backoff: 0s }\n",
    ));
    let second = planned(&ws.scan(&account));
    assert_eq!(second[0]["decision"], "retried", "{second:#?}");
    assert_eq!(
        second[0]["action_status"], "awaiting_approval",
        "{second:#?}"
    );
    assert_eq!(
        account.keys("ci").await,
        BTreeMap::from([(key.clone(), true)]),
        "nothing changes before approve"
    );
    let id = first[0]["action_id"].to_string();
    let approved = ws.json(
        &account,
        &[
            "actions", "approve", &id, "--by", "alice", "--format", "json",
        ],
    );
    assert_eq!(approved[0]["status"], "done", "{approved:#}");
    assert_eq!(account.keys("ci").await, BTreeMap::from([(key, false)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_rotation_is_tried_again_once_its_reason_is_gone() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("ci", "/", &[]).await;
    let old = account.key("ci", 200, Some(1)).await;
    let other = account.key("ci", 10, Some(1)).await;
    let ws = Workspace::with_file_delivery_timing(&account, "0s", "0s");
    let policy = "policies:\n  - id: rotate-old\n    severity: high\n    mode: enforce\n    select:\n      kinds: [access_key]\n    when:\n      age_over: 90d\n      status: [active]\n    actions: [rotate]\n";
    ws.use_policies(policy);
    let first = planned(&ws.scan(&account));
    assert_eq!(first[0]["action_status"], "refused", "{first:#?}");
    assert!(
        first[0]["reason"]
            .as_str()
            .is_some_and(|it| it.contains("both access keys")),
        "{first:#?}"
    );
    // Still refused: tried again, refused again, nothing changed.
    let second = planned(&ws.scan(&account));
    assert_eq!(second[0]["decision"], "retried");
    assert_eq!(second[0]["action_status"], "refused");
    assert_eq!(account.keys("ci").await.len(), 2);

    account.set_status("ci", &other, StatusType::Inactive).await;
    let third = planned(&ws.scan(&account));
    assert_eq!(third[0]["decision"], "retried", "{third:#?}");
    assert_eq!(third[0]["action_status"], "done", "{third:#?}");
    let keys = account.keys("ci").await;
    assert!(
        !keys.contains_key(&old) && !keys.contains_key(&other),
        "{keys:?}"
    );
    assert_eq!(keys.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_of_an_active_key_deactivates_it_and_holds_it() {
    let Some(account) = Account::new().await else {
        return;
    };
    account.user("ci", "/", &[]).await;
    let key = account.key("ci", 200, Some(100)).await;
    let ws = Workspace::new(&account, "");
    ws.scan(&account);
    let held = ws.json(
        &account,
        &[
            "delete",
            &key,
            "--enforce",
            "--hold",
            "1h",
            "--format",
            "json",
        ],
    );
    assert_eq!(held[0]["status"], "waiting", "{held:#}");
    assert_eq!(held[0]["step"], "hold");
    assert_eq!(
        account.keys("ci").await,
        BTreeMap::from([(key.clone(), false)])
    );
    // Not due yet: resume leaves it.
    let resumed = ws.json(&account, &["actions", "resume", "--format", "json"]);
    assert_eq!(resumed, json!([]));
    assert_eq!(
        account.keys("ci").await,
        BTreeMap::from([(key.clone(), false)])
    );

    // With no hold it is deleted at once, after being deactivated.
    account.user("ci2", "/", &[]).await;
    let other = account.key("ci2", 200, Some(100)).await;
    ws.scan(&account);
    let deleted = ws.json(
        &account,
        &[
            "delete",
            &other,
            "--enforce",
            "--hold",
            "0s",
            "--format",
            "json",
        ],
    );
    assert_eq!(deleted[0]["status"], "done", "{deleted:#}");
    assert!(account.keys("ci2").await.is_empty());
    let steps = ws.json(
        &account,
        &[
            "actions",
            "show",
            &deleted[0]["id"].to_string(),
            "--format",
            "json",
        ],
    );
    let names: Vec<&str> = steps["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|it| it["step"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["delete", "hold", "remove", "done"], "{steps:#}");
}
