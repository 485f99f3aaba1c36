//! The engine against an in-memory key source: rules that need a clock moved or a source that
//! answers what moto cannot be made to (a refused create, keys appearing mid-rotation).

use crate::store::{ActionControl, Actions};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use keywarden_connector::{
    Capability, Connector, ConnectorError, Credential, CredentialKind, CredentialStatus, HeldKey,
    Identity, IdentityKind, Inventory, InventorySink, KeyActions, KeyHolder, LastUse, NewKey,
    NoProgress, RotationTiming, ScanContext, Secret,
};

use super::machine::from_record;
use super::rotate::Rotate;
use super::{ActionKind, Engine, Request, key_actions, resume, start, target};
use crate::policy::PolicySet;
use crate::store::{ActionStatus, SqliteStore};

const USER: &str = "user:ci";

#[derive(Debug, Default)]
struct Keys {
    keys: Vec<HeldKey>,
    last_used: HashMap<String, LastUse>,
    delivered: Option<String>,
    next: u32,
    created: u32,
    refuse_create: Option<String>,
    /// How many more `set_active` calls fail.
    fail_set_active: u32,
}

/// A source with one user whose keys live in memory.
#[derive(Debug)]
struct Fake {
    keys: Mutex<Keys>,
    capabilities: &'static [Capability],
}

impl Fake {
    fn new(capabilities: &'static [Capability]) -> Arc<Self> {
        let fake = Arc::new(Self {
            keys: Mutex::new(Keys::default()),
            capabilities,
        });
        fake.add("OLD", true);
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().expect("lock")
    }

    fn add(&self, id: &str, active: bool) {
        self.lock().keys.push(HeldKey {
            id: id.to_owned(),
            active,
            created_at: Some(t0() - Duration::days(200)),
        });
    }

    fn ids(&self) -> Vec<(String, bool)> {
        self.lock()
            .keys
            .iter()
            .map(|it| (it.id.clone(), it.active))
            .collect()
    }
}

#[async_trait]
impl KeyActions for Fake {
    fn capabilities(&self, _kind: CredentialKind) -> &'static [Capability] {
        self.capabilities
    }

    async fn keys(&self, identity_id: &str) -> Result<KeyHolder, ConnectorError> {
        Ok(KeyHolder {
            identity_id: identity_id.to_owned(),
            name: "ci".to_owned(),
            keys: self.lock().keys.clone(),
        })
    }

    fn destination(&self, _identity_id: &str) -> Result<String, ConnectorError> {
        Ok("memory".to_owned())
    }

    async fn create_key(
        &self,
        _identity_id: &str,
        _replacing: &str,
        _attempt: &str,
    ) -> Result<NewKey, ConnectorError> {
        let mut keys = self.lock();
        if let Some(reason) = &keys.refuse_create {
            return Err(ConnectorError::Refused(reason.clone()));
        }
        keys.next += 1;
        keys.created += 1;
        let id = format!("NEW{}", keys.next);
        keys.keys.push(HeldKey {
            id: id.clone(),
            active: true,
            created_at: None,
        });
        Ok(NewKey {
            id,
            secret: Secret::new("s3cr3t".to_owned()),
        })
    }

    async fn deliver(&self, _: &str, key: &NewKey, _: &str) -> Result<(), ConnectorError> {
        self.lock().delivered = Some(key.id.clone());
        Ok(())
    }

    async fn delivered(&self, _: &str) -> Result<Option<NewKey>, ConnectorError> {
        Ok(self.lock().delivered.clone().map(|id| NewKey {
            id,
            secret: Secret::new("s3cr3t".to_owned()),
        }))
    }

    async fn verify(&self, _: &str, _: &NewKey) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn last_used(&self, _: &str, key_id: &str) -> Result<LastUse, ConnectorError> {
        Ok(self
            .lock()
            .last_used
            .get(key_id)
            .cloned()
            .unwrap_or(LastUse::Never))
    }

    async fn set_active(&self, _: &str, key_id: &str, active: bool) -> Result<(), ConnectorError> {
        let mut keys = self.lock();
        if keys.fail_set_active > 0 {
            keys.fail_set_active -= 1;
            return Err(ConnectorError::Permanent("access denied".to_owned()));
        }
        for key in &mut keys.keys {
            if key.id == key_id {
                key.active = active;
            }
        }
        Ok(())
    }

    fn rotation_timing(&self) -> RotationTiming {
        RotationTiming {
            overlap: std::time::Duration::from_secs(10 * 86_400),
            last_use_settle: std::time::Duration::from_secs(3600),
            grace: std::time::Duration::from_secs(86_400),
        }
    }

    async fn delete_key(&self, _: &str, key_id: &str) -> Result<(), ConnectorError> {
        self.lock().keys.retain(|it| it.id != key_id);
        Ok(())
    }

    async fn deny_sessions_before(
        &self,
        _: &str,
        _: DateTime<Utc>,
    ) -> Result<String, ConnectorError> {
        Ok("deny".to_owned())
    }

    async fn session_denials(&self, _: &str) -> Result<Vec<String>, ConnectorError> {
        Ok(Vec::new())
    }
}

#[derive(Debug)]
struct Source(Arc<Fake>);

#[async_trait]
impl Connector for Source {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn source(&self) -> &str {
        "fake"
    }

    async fn inventory(
        &self,
        _cx: &ScanContext,
        sink: &mut dyn InventorySink,
    ) -> Result<(), ConnectorError> {
        let keys = self.0.lock().keys.clone();
        sink.batch(Inventory {
            identities: vec![Identity {
                external_id: USER.to_owned(),
                kind: IdentityKind::IamUser,
                name: "ci".to_owned(),
                owner: None,
                purpose: None,
                tags: Default::default(),
                confirmed_leaks: Vec::new(),
            }],
            credentials: keys
                .into_iter()
                .map(|key| Credential {
                    external_id: key.id.clone(),
                    identity_id: USER.to_owned(),
                    kind: CredentialKind::AccessKey,
                    name: key.id,
                    status: if key.active {
                        CredentialStatus::Active
                    } else {
                        CredentialStatus::Inactive
                    },
                    created_at: key.created_at,
                    not_before: None,
                    expires_at: None,
                    last_used: LastUse::Never,
                    algorithm: None,
                    key_bits: None,
                    fingerprints: Vec::new(),
                    public_key: None,
                    owner: None,
                    purpose: None,
                    tags: Default::default(),
                    attributes: Default::default(),
                    signs_with: Vec::new(),
                })
                .collect(),
            errors: Vec::new(),
            skipped: Vec::new(),
        })
        .await
    }

    fn key_actions(&self) -> Option<Arc<dyn KeyActions>> {
        Some(self.0.clone())
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("time")
}

/// A ledger that has scanned the fake source, and a clock at `t0 + offset seconds`.
struct World {
    store: SqliteStore,
    fake: Arc<Fake>,
    connectors: Vec<Arc<dyn Connector>>,
    policies: PolicySet,
    offset: Arc<AtomicI64>,
}

impl World {
    async fn new(capabilities: &'static [Capability]) -> Self {
        let fake = Fake::new(capabilities);
        let connectors: Vec<Arc<dyn Connector>> = vec![Arc::new(Source(fake.clone()))];
        let store = SqliteStore::in_memory().await.expect("store");
        crate::scan::run(
            &store,
            &connectors,
            &PolicySet::default(),
            t0(),
            Arc::new(NoProgress),
        )
        .await
        .expect("scan");
        Self {
            store,
            fake,
            connectors,
            policies: PolicySet::default(),
            offset: Arc::new(AtomicI64::new(0)),
        }
    }

    fn at(&self, seconds: i64) -> impl Fn() -> DateTime<Utc> + Send + Sync + use<> {
        self.offset.store(seconds, Ordering::SeqCst);
        let offset = self.offset.clone();
        move || t0() + Duration::seconds(offset.load(Ordering::SeqCst))
    }

    async fn rotate(&self) -> crate::store::ActionRecord {
        let clock = self.at(0);
        let target = target(&self.store, "OLD", None).await.expect("target");
        start(
            self.engine(&clock),
            Request::new(ActionKind::Rotate, &target, "test"),
        )
        .await
        .expect("start")
    }

    fn engine<'a>(&'a self, clock: super::Clock<'a>) -> Engine<'a> {
        Engine {
            store: &self.store,
            connectors: &self.connectors,
            policies: &self.policies,
            holders: &[],
            clock,
        }
    }

    /// A rotation of OLD stored as an interrupted process left it, in this state.
    async fn interrupted_rotation(&self, state: serde_json::Value) -> crate::store::ActionRecord {
        let step = state["step"].as_str().unwrap_or_default().to_owned();
        self.store
            .create_action(
                &crate::store::NewAction {
                    kind: ActionKind::Rotate,
                    source: "fake".to_owned(),
                    credential_external_id: "OLD".to_owned(),
                    identity_external_id: USER.to_owned(),
                    origin: "test".to_owned(),
                    step,
                    state,
                    holder: super::engine::this_process(),
                    status: ActionStatus::Running,
                    parent: None,
                    exclusive: true,
                },
                t0(),
            )
            .await
            .expect("create")
    }

    async fn resume_at(&self, seconds: i64, id: i64) -> crate::store::ActionRecord {
        let clock = self.at(seconds);
        resume(self.engine(&clock)).await.expect("resume");
        self.store.action(id).await.expect("action")
    }
}

impl World {
    /// A world whose one policy, in dry run, rotates access keys older than 90 days.
    async fn dry_run_rotation() -> Self {
        let text = "policies:\n  - id: rotate-old\n    severity: high\n    select: { kinds: \
                    [access_key] }\n    when: { age_over: 90d }\n    actions: [rotate]\n";
        let mut world = Self::new(Capability::ALL).await;
        world.policies = PolicySet {
            policies: crate::policy::parse_str(std::path::Path::new("p.yaml"), text)
                .expect("policy"),
        };
        world
    }

    /// Scans the fake source with the world's policies, then runs enforcement over the findings.
    async fn scan_and_enforce(&self) -> super::enforce::Report {
        let report = crate::scan::run(
            &self.store,
            &self.connectors,
            &self.policies,
            t0(),
            Arc::new(NoProgress),
        )
        .await
        .expect("scan");
        let clock = self.at(0);
        super::enforce::run(
            self.engine(&clock),
            &crate::config::EnforcementConfig::default(),
            &report.enforcement_scope(),
            &report.findings,
        )
        .await
        .expect("enforce")
    }
}

#[tokio::test]
async fn the_overlap_ends_early_only_once_the_new_key_is_used_and_the_old_one_is_not() {
    let world = World::new(Capability::ALL).await;
    let started = world.rotate().await;
    assert_eq!(started.status, ActionStatus::Waiting);
    assert_eq!(started.step, "overlap");
    // Settled, but nothing uses the new key yet: the old one stays, though it is unused too.
    let waiting = world.resume_at(2 * 3600, started.id).await;
    assert_eq!(waiting.step, "overlap", "{waiting:?}");
    assert_eq!(
        world.fake.ids(),
        [("OLD".into(), true), ("NEW1".into(), true)]
    );

    // The old key was used after the delivery: it stays too.
    let delivered = t0();
    for (key, at) in [("NEW1", 90 * 60), ("OLD", 100 * 60)] {
        world.fake.lock().last_used.insert(
            key.to_owned(),
            LastUse::At {
                at: delivered + Duration::seconds(at),
                source: "test".to_owned(),
            },
        );
    }
    let still = world.resume_at(4 * 3600, started.id).await;
    assert_eq!(still.step, "overlap", "{still:?}");
    assert!(world.fake.ids().iter().all(|(_, active)| *active));

    // The new key in use, the old one not since the delivery: the overlap ends now.
    world.fake.lock().last_used.insert(
        "OLD".to_owned(),
        LastUse::At {
            at: delivered - Duration::days(3),
            source: "test".to_owned(),
        },
    );
    let ended = world.resume_at(6 * 3600, started.id).await;
    assert_eq!(ended.step, "grace", "{ended:?}");
    assert_eq!(
        world.fake.ids(),
        [("OLD".into(), false), ("NEW1".into(), true)]
    );
}

#[tokio::test]
async fn a_create_the_source_refuses_is_a_refusal_not_a_retry() {
    let world = World::new(Capability::ALL).await;
    world.fake.lock().refuse_create =
        Some("LimitExceeded: Cannot exceed quota for AccessKeysPerUser: 2".to_owned());
    let started = world.rotate().await;
    assert_eq!(started.status, ActionStatus::Refused, "{started:?}");
    assert!(
        started
            .reason
            .as_deref()
            .is_some_and(|it| it.contains("LimitExceeded"))
    );
    // Refused is final until retried: resume does not try again.
    let later = world.resume_at(3600, started.id).await;
    assert_eq!(later.status, ActionStatus::Refused);
    assert_eq!(world.fake.lock().created, 0);
}

#[tokio::test]
async fn keys_that_appear_mid_rotation_are_told_by_id_not_by_the_clock() {
    let world = World::new(Capability::ALL).await;
    let clock = world.at(0);
    // An action interrupted in `create`, recorded when only OLD existed.
    let record = world
        .interrupted_rotation(serde_json::json!({ "step": "create", "existing": ["OLD"] }))
        .await;
    // Two keys nobody recorded: someone else is creating keys; refuse.
    world.fake.add("STRAY1", true);
    world.fake.add("STRAY2", true);
    let refused = super::drive(world.engine(&clock), record.id)
        .await
        .expect("drive");
    assert_eq!(refused.status, ActionStatus::Refused, "{refused:?}");
    assert!(
        refused
            .reason
            .as_deref()
            .is_some_and(|it| it.contains("STRAY1") && it.contains("STRAY2"))
    );
    assert_eq!(world.fake.ids().len(), 3, "nothing deleted");

    // One such key, with no attempt to create one recorded, is a person's: left alone.
    world.fake.lock().keys.retain(|it| it.id != "STRAY2");
    let refused = super::retry(world.engine(&clock), record.id, "test", true)
        .await
        .expect("retry");
    assert_eq!(refused.status, ActionStatus::Refused, "{refused:?}");
    assert_eq!(world.fake.ids().len(), 2, "the person's key is kept");
}

#[tokio::test]
async fn after_an_attempt_to_create_one_unknown_key_is_the_orphan_and_goes() {
    let world = World::new(Capability::ALL).await;
    let clock = world.at(0);
    // Interrupted right after `CreateAccessKey` (the attempt recorded, the key id not).
    let record = world
        .interrupted_rotation(
            serde_json::json!({ "step": "create", "existing": ["OLD"], "attempted": true }),
        )
        .await;
    world.fake.add("LOST", true);
    super::drive(world.engine(&clock), record.id)
        .await
        .expect("drive");
    let ids: Vec<String> = world.fake.ids().into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids,
        ["OLD", "NEW1"],
        "the orphan is deleted and one new key made"
    );
}

#[tokio::test]
async fn a_key_a_person_makes_after_a_refused_create_is_never_deleted() {
    let world = World::new(Capability::ALL).await;
    world.fake.lock().refuse_create = Some("LimitExceeded".to_owned());
    let started = world.rotate().await;
    assert_eq!(started.status, ActionStatus::Refused);
    // The person rotates by hand meanwhile; the source takes keys again.
    world.fake.add("BYHAND", true);
    world.fake.lock().refuse_create = None;
    let clock = world.at(60);
    let again = super::retry(world.engine(&clock), started.id, "policy:x", true)
        .await
        .expect("retry");
    assert_eq!(again.status, ActionStatus::Refused, "{again:?}");
    let ids: Vec<String> = world.fake.ids().into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids,
        ["OLD", "BYHAND"],
        "the person's key is kept and nothing created"
    );
}

#[test]
fn a_state_written_before_the_machines_were_typed_reads_as_its_machine() {
    let delivered = t0();
    let record = crate::store::ActionRecord {
        id: 7,
        kind: ActionKind::Rotate,
        source: "aws".to_owned(),
        credential_external_id: "AKIAOLD".to_owned(),
        identity_external_id: USER.to_owned(),
        origin: "cli".to_owned(),
        status: ActionStatus::Running,
        step: "verify".to_owned(),
        state: serde_json::json!({
            "existing": ["AKIAOLD"], "retire": null, "new_key": "AKIANEW",
            "token": "keywarden-action-7-AKIANEW", "delivered_at": delivered,
            "deactivated_at": null, "create_entered_at": delivered, "deny_before": null,
        }),
        reason: None,
        next_at: None,
        lease_owner: None,
        lease_until: None,
        lease_token: 0,
        created_at: delivered,
        updated_at: delivered,
        parent: None,
        attempts: 0,
    };
    let state: Rotate = from_record(&record).expect("legacy state");
    assert_eq!(
        state,
        Rotate::Verify {
            new_key: "AKIANEW".to_owned(),
            delivered_at: delivered,
        }
    );
    let mut check = record.clone();
    check.step = "check".to_owned();
    assert_eq!(from_record::<Rotate>(&check).expect("check"), Rotate::Check);
}

#[tokio::test]
async fn a_source_without_a_capability_is_refused_naming_it() {
    let world = World::new(&[Capability::ReadKeys, Capability::DeactivateKey]).await;
    let err = key_actions(
        &world.connectors,
        "fake",
        ActionKind::Rotate,
        CredentialKind::AccessKey,
    )
    .expect_err("refused");
    let message = err.to_string();
    assert!(
        message.contains("create_key") && message.contains("deliver_key"),
        "{message}"
    );
    assert!(
        key_actions(
            &world.connectors,
            "fake",
            ActionKind::Disable,
            CredentialKind::AccessKey
        )
        .is_ok()
    );
    // A kind that needs no connector needs no capability.
    assert!(
        key_actions(
            &[],
            "anything",
            ActionKind::RaiseFinding,
            CredentialKind::AccessKey
        )
        .is_ok_and(|it| it.is_none())
    );
}

#[tokio::test]
async fn retrying_a_failed_containment_retries_the_step_that_failed() {
    let world = World::new(Capability::ALL).await;
    world.fake.lock().fail_set_active = 1;
    let clock = world.at(0);
    let target = target(&world.store, "OLD", None).await.expect("target");
    let mut request = Request::new(ActionKind::Contain, &target, "test");
    request.reason = Some("leaked".to_owned());
    let contained = start(world.engine(&clock), request).await.expect("start");
    assert_eq!(contained.status, ActionStatus::Failed, "{contained:?}");
    assert_eq!(world.fake.ids(), vec![("OLD".to_owned(), true)]);

    let retried = super::engine::retry(world.engine(&clock), contained.id, "test", true)
        .await
        .expect("retry");
    assert_eq!(retried.status, ActionStatus::Done, "{retried:?}");
    assert_eq!(world.fake.ids(), vec![("OLD".to_owned(), false)]);
    let children = world
        .store
        .child_actions(contained.id)
        .await
        .expect("children");
    let quarantine = children
        .iter()
        .find(|it| it.kind == ActionKind::Quarantine)
        .expect("quarantine child");
    assert_eq!(
        (quarantine.status, quarantine.attempts),
        (ActionStatus::Done, 1)
    );
    assert!(
        children
            .iter()
            .any(|it| it.kind == ActionKind::RaiseFinding && it.status == ActionStatus::Done),
        "{children:?}"
    );
}

#[tokio::test]
async fn a_holder_whose_lease_was_taken_over_changes_no_key() {
    let world = World::new(Capability::ALL).await;
    let clock = world.at(0);
    let target = target(&world.store, "OLD", None).await.expect("target");
    let mut request = Request::new(ActionKind::Disable, &target, "test");
    request.approval_required = true;
    let action = start(world.engine(&clock), request).await.expect("start");
    let held = world
        .store
        .claim_action(action.id, "process-a", t0() + Duration::seconds(61))
        .await
        .expect("claim a");
    // process-a stalls past its lease; process-b takes the action over.
    let later = t0() + Duration::seconds(600);
    let taken = world
        .store
        .claim_action(action.id, "process-b", later)
        .await
        .expect("claim b");
    assert!(taken.lease_token > held.lease_token);

    let clock = world.at(600);
    let keys: Arc<dyn KeyActions> = world.fake.clone();
    let stale = super::machine::StepCx {
        engine: world.engine(&clock),
        record: &held,
        keys: Some(keys.clone()),
        versions: None,
        holder: "process-a",
        token: held.lease_token,
    };
    let fenced = stale.keys().expect("keys");
    assert_eq!(fenced.keys(USER).await.expect("read").keys.len(), 1);
    for refused in [
        fenced.set_active(USER, "OLD", false).await,
        fenced.delete_key(USER, "OLD").await,
    ] {
        assert!(
            matches!(&refused, Err(ConnectorError::Retryable { message, .. }) if message.contains("lease")),
            "{refused:?}"
        );
    }
    assert!(
        fenced
            .create_key(USER, "AKIAOLD", "keywarden-action-1")
            .await
            .is_err()
    );
    assert_eq!(world.fake.ids(), vec![("OLD".to_owned(), true)]);

    // The holder of the lease acts.
    let current = super::machine::StepCx {
        holder: "process-b",
        token: taken.lease_token,
        record: &taken,
        ..stale
    };
    current
        .keys()
        .expect("keys")
        .set_active(USER, "OLD", false)
        .await
        .expect("acts");
    assert_eq!(world.fake.ids(), vec![("OLD".to_owned(), false)]);
}

#[tokio::test]
async fn only_an_action_at_its_first_step_counts_as_having_changed_nothing() {
    let world = World::new(Capability::ALL).await;
    let clock = world.at(0);
    let target = target(&world.store, "OLD", None).await.expect("target");
    let mut request = Request::new(ActionKind::Rotate, &target, "test");
    request.approval_required = true;
    let fresh = start(world.engine(&clock), request).await.expect("start");
    assert!(super::engine::at_first_step(&fresh), "{fresh:?}");
    let cancelled = super::cancel(world.engine(&clock), fresh.id, "test", "tester")
        .await
        .expect("cancel");
    assert!(!cancelled.status.is_open());
    let part_way = world
        .interrupted_rotation(serde_json::json!({ "step": "create", "existing": ["OLD"] }))
        .await;
    assert!(!super::engine::at_first_step(&part_way), "{part_way:?}");
}

#[tokio::test]
async fn a_dry_run_plans_from_the_ledger_what_it_would_do_and_what_would_refuse_it() {
    let world = World::dry_run_rotation().await;
    let enforce = World::scan_and_enforce;
    use super::enforce::Decision;
    // One active key: the whole rotation, from the ledger (no call to the source).
    let report = enforce(&world).await;
    assert_eq!(report.items.len(), 1, "{:?}", report.items);
    let item = &report.items[0];
    assert_eq!(item.decision, Decision::WouldAct, "{item:?}");
    assert!(
        item.steps
            .iter()
            .any(|it| it == "create a new access key for ci"),
        "{item:?}"
    );
    assert!(
        item.steps.iter().any(|it| it == "deactivate OLD"),
        "{item:?}"
    );

    // Two active keys: both findings would be refused, saying why.
    world.fake.add("SECOND", true);
    let report = enforce(&world).await;
    assert_eq!(report.items.len(), 2, "{:?}", report.items);
    for item in &report.items {
        assert_eq!(item.decision, Decision::WouldRefuse, "{item:?}");
        let reason = item.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("both access keys of ci are active"),
            "{reason}"
        );
    }
    // Nothing was changed or started.
    assert_eq!(world.fake.ids().len(), 2);
    assert!(world.fake.lock().created == 0);
}

#[tokio::test]
async fn a_dry_run_over_more_findings_than_a_chunk_reads_every_one_from_the_ledger() {
    let world = World::dry_run_rotation().await;
    let total = super::enforce::CHUNK + 5;
    for n in 1..total {
        world.fake.add(&format!("K{n:05}"), true);
    }
    let enforced = world.scan_and_enforce().await;
    assert_eq!(enforced.items.len(), total);
    // Every finding, in the first chunk and past it, was planned from its ledger entry (a user
    // with many active keys: each rotation would be refused, saying so), none reported stale.
    for item in &enforced.items {
        assert_eq!(
            item.decision,
            super::enforce::Decision::WouldRefuse,
            "{item:?}"
        );
    }
}
