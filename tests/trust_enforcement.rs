//! `revoke_trust` carried out by an enforcing policy, against moto: a CI user's access key that
//! went unrotated past 90 days distrusts exactly the signers that user holds, from the moment the
//! key went stale until it is replaced.
//!
//! Needs moto (`KEYWARDEN_TEST_MOTO_URL`); skips without it unless `KEYWARDEN_REQUIRE_PEERS=1`.

mod common;
mod moto;

use aws_sdk_iam::types::StatusType;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::Value;

use moto::*;

const POLICY: &str = "policies:\n  - id: holder-key-max-age\n    severity: high\n    mode: MODE\n    \
    select:\n      kinds: [access_key]\n    when:\n      age_over: 90d\n      status: [active]\n    \
    actions: [revoke_trust]\n";

/// Two users: `ci` (key 120 days old) holds `keys/release.pem`, a code-signing certificate
/// trusted from its not-before 200 days ago; `fresh` (key 10 days old) holds `keys/fresh.pub`;
/// nobody holds `keys/other.pub`.
struct World {
    account: Account,
    ws: Workspace,
    stale: String,
}

async fn world(mode: &str) -> Option<World> {
    let account = Account::new().await?;
    account.user("ci", "/", &[]).await;
    let stale = account.key("ci", 120, Some(1)).await;
    account.user("fresh", "/", &[]).await;
    account.key("fresh", 10, Some(1)).await;
    let files = "  keys:\n    type: files\n    paths:\n      - glob: \"keys/**\"\n";
    let signers = "signers:\n  - key: { file: keys/release.pem }\n    held_by:\n      - source: aws\n        \
                   identities: [ci]\n  - key: { file: keys/fresh.pub }\n    held_by:\n      - source: aws\n        \
                   identities: [fresh]\n";
    let ws = Workspace::with_policies(&account, files, signers, &POLICY.replace("MODE", mode));
    common::write_code_signing_cert(&ws.path().join("keys/release.pem"), "release", -200, 200);
    for name in ["fresh", "other"] {
        common::write_public_key(&ws.path().join(format!("keys/{name}.pub")));
    }
    Some(World { account, ws, stale })
}

impl World {
    fn signers(&self) -> Vec<Value> {
        self.ws
            .json(&self.account, &["trust", "list", "--format", "json"])["signers"]
            .as_array()
            .expect("signers")
            .clone()
    }

    fn key_id(&self, file: &str) -> String {
        let signers = self.signers();
        let signer = signers
            .iter()
            .find(|it| it["credentials"][0]["name"] == file)
            .unwrap_or_else(|| panic!("{file}: {signers:#?}"));
        signer["key_id"].as_str().expect("key id").to_owned()
    }

    fn periods(&self, file: &str) -> Vec<Value> {
        let signers = self.signers();
        signers
            .iter()
            .find(|it| it["credentials"][0]["name"] == file)
            .unwrap_or_else(|| panic!("{file}: {signers:#?}"))["distrust_periods"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn trusted_at(&self, key_id: &str, at: DateTime<Utc>) -> bool {
        let at = at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let shown = self.ws.json(
            &self.account,
            &["trust", "show", key_id, "--at", &at, "--format", "json"],
        );
        shown["trusted"].as_bool().expect("trusted")
    }

    /// The stale key's creation time, as the ledger has it.
    fn created(&self, report: &Value) -> DateTime<Utc> {
        let created = by_id(report, &self.stale)["created_at"]
            .as_str()
            .expect("created_at");
        DateTime::parse_from_rfc3339(created)
            .expect("created_at")
            .with_timezone(&Utc)
    }
}

fn revoke_items(report: &Value) -> Vec<Value> {
    report["planned_actions"]
        .as_array()
        .expect("planned_actions")
        .iter()
        .filter(|it| it["action"] == "revoke_trust")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_holder_key_distrusts_exactly_the_signers_its_user_holds_until_it_is_replaced() {
    let Some(world) = world("enforce").await else {
        return;
    };
    let release = {
        world.ws.scan_with(&world.account, &["--no-enforce"]);
        world.key_id("keys/release.pem")
    };
    let report = world.ws.scan(&world.account);
    let items = revoke_items(&report);
    assert_eq!(items.len(), 1, "only the stale key matches: {items:#?}");
    assert_eq!(items[0]["credential"], world.stale.as_str());
    assert_eq!(items[0]["decision"], "started", "{items:#?}");
    assert_eq!(items[0]["action_status"], "done", "{items:#?}");

    let became_stale = world.created(&report) + Duration::days(90);
    let periods = world.periods("keys/release.pem");
    assert_eq!(periods.len(), 1, "{periods:#?}");
    assert_eq!(periods[0]["reason"], "stale");
    assert_eq!(periods[0]["by"], "policy:holder-key-max-age");
    assert_eq!(periods[0]["until"], Value::Null, "in force until replaced");
    assert_eq!(periods[0]["until_replaced"]["source"], "aws");
    assert_eq!(
        periods[0]["until_replaced"]["credential"],
        world.stale.as_str()
    );
    let from = DateTime::parse_from_rfc3339(periods[0]["from"].as_str().expect("from"))
        .expect("from")
        .with_timezone(&Utc);
    assert_eq!(from, became_stale, "from the moment the key went stale");
    assert!(world.trusted_at(&release, became_stale - Duration::seconds(1)));
    assert!(!world.trusted_at(&release, became_stale));
    assert!(!world.trusted_at(&release, Utc::now()));
    for other in ["keys/fresh.pub", "keys/other.pub"] {
        assert!(world.periods(other).is_empty(), "{other} is not held by ci");
    }

    // Acting again changes nothing.
    let again = revoke_items(&world.ws.scan(&world.account));
    assert_eq!(again[0]["decision"], "already_acted", "{again:#?}");
    assert_eq!(world.periods("keys/release.pem"), periods);

    // Only switched off, the key is not replaced: switched on again, it would sign while stale.
    world
        .account
        .set_status("ci", &world.stale, StatusType::Inactive)
        .await;
    world.ws.scan(&world.account);
    assert_eq!(world.periods("keys/release.pem")[0]["until"], Value::Null);

    // Replaced (a new key, the old one off): the next run ends the distrust at its own time,
    // the first time keywarden can tell; what was signed while the key was stale stays
    // distrusted.
    let new_key = world.account.key("ci", 0, None).await;
    let before = Utc::now();
    let replaced = world.ws.scan(&world.account);
    let after = Utc::now();
    assert!(revoke_items(&replaced).is_empty(), "{replaced:#}");
    let periods = world.periods("keys/release.pem");
    assert_eq!(periods.len(), 1, "{periods:#?}");
    let until = DateTime::parse_from_rfc3339(periods[0]["until"].as_str().expect("until"))
        .expect("until")
        .with_timezone(&Utc);
    assert!(
        before - Duration::seconds(1) <= until && until <= after,
        "{periods:#?}"
    );
    assert!(!world.trusted_at(&release, until - Duration::seconds(1)));
    assert!(world.trusted_at(&release, after + Duration::seconds(1)));

    // The stale key switched on again (and the new one off): distrusted again, from when it
    // went stale, until it is replaced.
    world
        .account
        .set_status("ci", &new_key, StatusType::Inactive)
        .await;
    world
        .account
        .set_status("ci", &world.stale, StatusType::Active)
        .await;
    let back = revoke_items(&world.ws.scan(&world.account));
    assert_eq!(back[0]["decision"], "started", "{back:#?}");
    assert!(!world.trusted_at(&release, Utc::now()));
    assert!(!world.trusted_at(&release, after + Duration::seconds(1)));
    assert_eq!(world.periods("keys/release.pem").len(), 2);

    let exported = world
        .ws
        .ok(&world.account, &["audit", "export", "--since", "0"]);
    let kinds: Vec<String> = common::stdout(&exported)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|it| it["subject"] == format!("signer/{release}").as_str())
        .filter_map(|it| it["kind"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        kinds,
        [
            "signer.distrusted",
            "signer.distrust_ended",
            "signer.distrusted"
        ],
        "each change is audited"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_revoke_trust_names_the_signers_and_changes_nothing() {
    let Some(world) = world("dry_run").await else {
        return;
    };
    world.ws.scan_with(&world.account, &["--no-enforce"]);
    let release = world.key_id("keys/release.pem");
    let report = world.ws.scan(&world.account);
    let items = revoke_items(&report);
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["decision"], "would_act", "{items:#?}");
    let steps: Vec<&str> = items[0]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert!(steps[0].contains(&release), "{steps:?}");
    assert!(
        steps[0].contains(&format!("until {} in aws is replaced", world.stale)),
        "{steps:?}"
    );
    assert!(world.periods("keys/release.pem").is_empty());
    assert!(
        world
            .ws
            .json(&world.account, &["actions", "list", "--format", "json"])
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoke_trust_awaiting_approval_is_started_once_and_distrusts_only_when_approved() {
    let Some(world) = world("enforce").await else {
        return;
    };
    world.ws.use_policies(&format!(
        "{}    enforce:\n      approval: required\n",
        POLICY.replace("MODE", "enforce")
    ));
    world.ws.scan_with(&world.account, &["--no-enforce"]);
    let first = revoke_items(&world.ws.scan(&world.account));
    assert_eq!(first[0]["decision"], "started", "{first:#?}");
    assert_eq!(first[0]["action_status"], "awaiting_approval", "{first:#?}");
    assert!(
        world.periods("keys/release.pem").is_empty(),
        "nothing before approval"
    );
    let again = revoke_items(&world.ws.scan(&world.account));
    assert_eq!(again[0]["decision"], "in_progress", "{again:#?}");
    assert_eq!(again[0]["action_id"], first[0]["action_id"]);
    let id = first[0]["action_id"].to_string();
    world.ws.ok(
        &world.account,
        &["actions", "approve", &id, "--by", "alice"],
    );
    assert_eq!(world.periods("keys/release.pem").len(), 1);
}
