//! The moto harness of the AWS integration tests: one fresh AWS account per test, a workspace
//! with a keywarden config for it, and a rotation driven in-process on a clock the test moves.
//! Without `KEYWARDEN_TEST_MOTO_URL` the tests skip, unless `KEYWARDEN_REQUIRE_PEERS=1` (as in
//! `scripts/test` and CI), where a missing peer fails them.

#![allow(dead_code)]

use keywarden::store::Actions;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use aws_credential_types::Credentials;
use aws_sdk_iam::types::{StatusType, Tag};
use chrono::{DateTime, Duration, Utc};
use keywarden::actions::{self, ActionKind};
use keywarden::store::SqliteStore;
use keywarden_connector::Connector;
use serde_json::{Value, json};

use crate::common::{repo, stderr, stdout};

/// The moto harness, if one is running; panics when peers are required and it is not.
pub fn moto_url() -> Option<String> {
    match std::env::var("KEYWARDEN_TEST_MOTO_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("KEYWARDEN_REQUIRE_PEERS").is_ok_and(|it| it == "1") => {
            panic!(
                "KEYWARDEN_TEST_MOTO_URL is not set but KEYWARDEN_REQUIRE_PEERS=1: start moto with scripts/start-moto"
            )
        }
        _ => {
            eprintln!("skipped: no moto (set KEYWARDEN_TEST_MOTO_URL, see scripts/start-moto)");
            None
        }
    }
}

/// One AWS account of moto, with keywarden's admin credentials in it.
pub struct Account {
    pub url: String,
    pub id: String,
    pub creds: Credentials,
    pub iam: aws_sdk_iam::Client,
    pub http: reqwest::Client,
}

pub static NEXT: AtomicI64 = AtomicI64::new(0);

/// A fresh account id: moto's state outlives test runs, so it must differ from earlier runs
/// (a base from the time and process id, taken once per process) and from every other id of this
/// process (a counter on top: time read per call could repeat across threads racing on it).
pub fn fresh_account_id() -> String {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(|| {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        nanos / 1000 + i64::from(std::process::id()) * 7919
    });
    let n = (base + NEXT.fetch_add(1, Ordering::SeqCst)) % 900_000_000_000;
    format!("{:012}", 100_000_000_000 + n)
}

pub fn sdk_config(url: &str, creds: Credentials) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(creds))
        .build()
}

impl Account {
    pub async fn new() -> Option<Self> {
        let url = moto_url()?;
        let id = fresh_account_id();
        let base = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "test-base-secret",
            None,
            None,
            "test",
        );
        let sts = aws_sdk_sts::Client::new(&sdk_config(&url, base));
        let assumed = sts
            .assume_role()
            .role_arn(format!("arn:aws:iam::{id}:role/keywarden"))
            .role_session_name("keywarden-test")
            .send()
            .await
            .expect("assume role in moto");
        let c = assumed.credentials().expect("credentials");
        let creds = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "moto",
        );
        let iam = aws_sdk_iam::Client::new(&sdk_config(&url, creds.clone()));
        Some(Self {
            url,
            id,
            creds,
            iam,
            http: reqwest::Client::new(),
        })
    }

    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&sdk_config(&self.url, self.creds.clone()))
    }

    pub async fn user(&self, name: &str, path: &str, tags: &[(&str, &str)]) -> String {
        let mut req = self.iam.create_user().user_name(name).path(path);
        for (k, v) in tags {
            req = req.tags(Tag::builder().key(*k).value(*v).build().expect("tag"));
        }
        let out = req.send().await.expect("create user");
        out.user().expect("user").arn().to_owned()
    }

    /// Creates a key, then sets its age and last use (`None`: never used) through moto's backend.
    pub async fn key(
        &self,
        user: &str,
        created_days_ago: i64,
        used_days_ago: Option<i64>,
    ) -> String {
        let out = self
            .iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .expect("create key");
        let id = out.access_key().expect("key").access_key_id().to_owned();
        self.backdate(&id, created_days_ago, used_days_ago).await;
        id
    }

    /// Users `<prefix>-0` .. `<prefix>-<n-1>`, owned by `team`, each with one key created
    /// `100 + i` days ago and last used as given.
    pub async fn users_with_a_key(&self, prefix: &str, n: i64, used_days_ago: Option<i64>) {
        for i in 0..n {
            let user = format!("{prefix}-{i}");
            self.user(&user, "/", &[("owner", "team")]).await;
            self.key(&user, 100 + i, used_days_ago).await;
        }
    }

    pub async fn backdate(&self, key: &str, created_days_ago: i64, used_days_ago: Option<i64>) {
        let now = Utc::now();
        let created = (now - Duration::days(created_days_ago)).format("%Y-%m-%dT%H:%M:%SZ");
        let last_used = used_days_ago.map(|d| {
            (now - Duration::days(d))
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        });
        self.control(
            "backdate",
            json!({
                "account_id": self.id, "access_key_id": key,
                "created": created.to_string(), "last_used": last_used,
                "service": "s3", "region": "eu-west-1",
            }),
        )
        .await;
    }

    pub async fn set_status(&self, user: &str, key: &str, status: StatusType) {
        self.iam
            .update_access_key()
            .user_name(user)
            .access_key_id(key)
            .status(status)
            .send()
            .await
            .expect("update key");
    }

    pub async fn control(&self, route: &str, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}/_keywarden/{route}", self.url))
            .json(&body)
            .send()
            .await
            .expect("harness");
        assert!(res.status().is_success(), "{route}: {}", res.status());
        res.json().await.expect("json")
    }

    /// What the harness counted for keywarden's credentials: `{"calls": {..}, "throttled": n}`.
    pub async fn stats(&self) -> Value {
        self.http
            .get(format!(
                "{}/_keywarden/stats?access_key_id={}",
                self.url,
                self.creds.access_key_id()
            ))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json")
    }

    /// The secret of every key created with keywarden's credentials, by key id (the harness keeps
    /// the answers to CreateAccessKey).
    pub async fn created_secrets(&self) -> BTreeMap<String, String> {
        serde_json::from_value(self.stats().await["created_secrets"].clone()).unwrap_or_default()
    }

    /// The calls one access key signed, by operation.
    pub async fn calls_of(&self, key: &str) -> BTreeMap<String, u64> {
        let stats: Value = self
            .http
            .get(format!("{}/_keywarden/stats?access_key_id={key}", self.url))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        serde_json::from_value(stats["calls"].clone()).unwrap_or_default()
    }

    /// Answers `operations` signed with keywarden's key with AccessDenied (only for requests
    /// naming `user`, if given); no operations lifts the denial.
    pub async fn deny(&self, user: Option<&str>, operations: &[&str]) {
        let mut body = json!({
            "access_key_id": self.creds.access_key_id(),
            "operations": operations,
        });
        if let Some(user) = user {
            body["user_name"] = json!(user);
        }
        self.control("deny", body).await;
    }

    /// The names of a user's inline policies.
    pub async fn inline_policies(&self, user: &str) -> Vec<String> {
        self.iam
            .list_user_policies()
            .user_name(user)
            .send()
            .await
            .expect("policies")
            .policy_names()
            .to_vec()
    }

    /// Sets a key's last use to an exact time.
    pub async fn used_at(&self, key: &str, at: DateTime<Utc>) {
        self.control(
            "backdate",
            json!({
                "account_id": self.id, "access_key_id": key,
                "last_used": at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "service": "s3", "region": "eu-west-1",
            }),
        )
        .await;
    }

    /// Calls keywarden's credentials made, by operation.
    pub async fn calls(&self) -> BTreeMap<String, u64> {
        serde_json::from_value(self.stats().await["calls"].clone()).unwrap_or_default()
    }

    pub async fn reset_calls(&self) {
        self.control(
            "stats/reset",
            json!({ "access_key_id": self.creds.access_key_id() }),
        )
        .await;
    }

    /// The user's keys: id → active.
    pub async fn keys(&self, user: &str) -> BTreeMap<String, bool> {
        let out = self
            .iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .expect("list keys");
        out.access_key_metadata()
            .iter()
            .map(|it| {
                (
                    it.access_key_id().expect("id").to_owned(),
                    it.status() == Some(&StatusType::Active),
                )
            })
            .collect()
    }

    /// Who a delivered key authenticates as (STS GetCallerIdentity signed with it).
    pub async fn whoami(&self, key: &Value) -> String {
        let creds = Credentials::new(
            key["AccessKeyId"].as_str().expect("id"),
            key["SecretAccessKey"].as_str().expect("secret"),
            None,
            None,
            "consumer",
        );
        let sts = aws_sdk_sts::Client::new(&sdk_config(&self.url, creds));
        let me = sts.get_caller_identity().send().await.expect("whoami");
        me.arn().expect("arn").to_owned()
    }
}

/// The action lease of the crash tests: a crashed holder's actions are free after it.
pub const SHORT_LEASE: std::time::Duration = std::time::Duration::from_millis(1500);

/// A directory with a keywarden config for one moto account.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(account: &Account, source_extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "store:\n  path: ledger.db\npolicies:\n  - {policies}\nsources:\n  aws:\n    type: aws_iam\n    endpoint_url: {url}\n    region: us-east-1\n{extra}",
            policies = repo().join("policies").display(),
            url = account.url,
            extra = source_extra,
        );
        std::fs::write(dir.path().join("keywarden.yaml"), config).expect("config");
        Self { dir }
    }

    /// A workspace whose only policies are `policies` (one YAML file), with `source_extra` lines
    /// under the source and `top_extra` at the top level of the config.
    pub fn with_policies(
        account: &Account,
        source_extra: &str,
        top_extra: &str,
        policies: &str,
    ) -> Self {
        let ws = Self::new(account, source_extra);
        let dir = ws.path().join("enforced");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("policies.yaml"), policies).expect("policy");
        let config = std::fs::read_to_string(ws.path().join("keywarden.yaml")).expect("config");
        let config = config.replace(
            &format!("  - {}\n", repo().join("policies").display()),
            "  - enforced\n",
        );
        std::fs::write(
            ws.path().join("keywarden.yaml"),
            format!("{top_extra}{config}"),
        )
        .expect("config");
        ws
    }

    /// Replaces the workspace's policies with `policies` (one YAML file).
    pub fn use_policies(&self, policies: &str) {
        let dir = self.path().join("enforced");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("policies.yaml"), policies).expect("policy");
        let config = std::fs::read_to_string(self.path().join("keywarden.yaml")).expect("config");
        let config = config.replace(
            &format!("  - {}\n", repo().join("policies").display()),
            "  - enforced\n",
        );
        std::fs::write(self.path().join("keywarden.yaml"), config).expect("config");
    }

    /// Runs `keywarden scan --format json` and returns the report.
    pub fn scan_with(&self, account: &Account, args: &[&str]) -> Value {
        let mut all = vec!["scan", "--format", "json", "--no-progress"];
        all.extend_from_slice(args);
        let out = self.ok(account, &all);
        serde_json::from_slice(&out.stdout).expect("json report")
    }

    /// The JSON output of a keywarden command that must succeed.
    pub fn json(&self, account: &Account, args: &[&str]) -> Value {
        let out = self.ok(account, args);
        serde_json::from_slice(&out.stdout).expect("json")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Action leases of [`SHORT_LEASE`], so a crashed process's actions are soon taken over.
    pub fn short_lease(&self) {
        let file = self.path().join("keywarden.yaml");
        let config = std::fs::read_to_string(&file).expect("config");
        let config = config.replacen(
            "store:\n  path: ledger.db\n",
            &format!(
                "store:\n  path: ledger.db\n  action_lease: {}ms\n",
                SHORT_LEASE.as_millis()
            ),
            1,
        );
        std::fs::write(&file, config).expect("config");
    }

    pub fn delivered_path(&self, user: &str) -> PathBuf {
        self.path().join("delivered").join(format!("{user}.json"))
    }

    /// Rotation into files under `delivered/`, with no overlap and no grace.
    pub fn with_file_delivery(account: &Account) -> Self {
        Self::with_file_delivery_timing(account, "0s", "0s")
    }

    /// Rotation into files under `delivered/`, with this overlap (last use settles after the
    /// same time) and grace.
    pub fn with_file_delivery_timing(account: &Account, overlap: &str, grace: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = format!(
            "    rotation:\n      overlap: {overlap}\n      grace: {grace}\n      last_use_settle: {overlap}\n      deliver:\n        - users: \"*\"\n          type: file\n          path: {}/delivered/{{user}}.json\n",
            dir.path().display()
        );
        let ws = Self::new(account, &extra);
        // Keep the config in the directory the delivery path names.
        std::fs::rename(
            ws.path().join("keywarden.yaml"),
            dir.path().join("keywarden.yaml"),
        )
        .expect("move config");
        Self { dir }
    }

    pub fn run(&self, account: &Account, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keywarden"));
        cmd.args(args)
            .current_dir(self.path())
            .env_remove("KEYWARDEN_CONFIG")
            .env_remove("AWS_PROFILE")
            .env("KEYWARDEN_LOG", "warn")
            .env("AWS_ACCESS_KEY_ID", account.creds.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", account.creds.secret_access_key())
            .env(
                "AWS_SESSION_TOKEN",
                account.creds.session_token().unwrap_or_default(),
            )
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path().join("no-aws-credentials"),
            );
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run keywarden")
    }

    pub fn ok(&self, account: &Account, args: &[&str]) -> Output {
        let out = self.run(account, args, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "keywarden {args:?}\nstdout:\n{}\nstderr:\n{}",
            stdout(&out),
            stderr(&out)
        );
        out
    }

    pub fn scan(&self, account: &Account) -> Value {
        let out = self.ok(account, &["scan", "--format", "json", "--no-progress"]);
        serde_json::from_slice(&out.stdout).expect("json report")
    }

    pub fn delivered(&self, user: &str) -> Value {
        let text = std::fs::read_to_string(self.delivered_path(user)).expect("delivered file");
        serde_json::from_str(&text).expect("delivered json")
    }
}

pub fn credentials(report: &Value) -> Vec<&Value> {
    report["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .collect()
}

pub fn by_id<'a>(report: &'a Value, id: &str) -> &'a Value {
    credentials(report)
        .into_iter()
        .find(|it| it["external_id"] == id)
        .unwrap_or_else(|| panic!("{id} not in the report: {report:#}"))
}

pub fn policies_of(credential: &Value) -> Vec<String> {
    let mut out: Vec<String> = credential["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|it| it["policy"].as_str().expect("policy").to_owned())
        .collect();
    out.sort();
    out
}

pub fn days_ago(value: &Value) -> i64 {
    let at: DateTime<Utc> = value.as_str().expect("time").parse().expect("rfc3339");
    (Utc::now() - at).num_days()
}

/// A connector acting with the account's credentials, for library-level tests that move the
/// clock.
pub fn connector(account: &Account, rotation: &str) -> Arc<dyn Connector> {
    let json = format!(
        "{{\"endpoint_url\": \"{}\", \"region\": \"us-east-1\", \"rotation\": {rotation}}}",
        account.url
    );
    let config: keywarden_aws_iam::AwsIamConfig = serde_json::from_str(&json).expect("config");
    Arc::new(
        config
            .build_with_credentials("aws", account.creds.clone())
            .expect("build"),
    )
}

/// A rotation driven in this process, on a clock the test moves forward.
pub struct TimedRotation {
    pub store: SqliteStore,
    pub connectors: Vec<Arc<dyn Connector>>,
    /// Seconds added to the real clock.
    pub offset: Arc<AtomicI64>,
    /// The action as `start` left it.
    pub started: keywarden::store::ActionRecord,
}

impl TimedRotation {
    /// Scans the account into a fresh ledger and starts rotating `old` with these `rotation`
    /// settings (JSON).
    pub async fn start(account: &Account, old: &str, rotation: &str) -> Self {
        let connector = connector(account, rotation);
        let store = SqliteStore::in_memory().await.expect("store");
        keywarden::scan::run(
            &store,
            std::slice::from_ref(&connector),
            &keywarden::policy::PolicySet::default(),
            Utc::now(),
            Arc::new(keywarden_connector::NoProgress),
        )
        .await
        .expect("scan");
        let target = actions::target(&store, old, None).await.expect("target");
        let offset = Arc::new(AtomicI64::new(0));
        let clock = clock(&offset);
        let connectors = vec![connector];
        let policies = keywarden::policy::PolicySet::default();
        let engine = actions::Engine {
            store: &store,
            connectors: &connectors,
            policies: &policies,
            holders: &[],
            clock: &clock,
        };
        let started = actions::start(
            engine,
            actions::Request::new(ActionKind::Rotate, &target, "test"),
        )
        .await
        .expect("start");
        Self {
            store,
            connectors,
            offset,
            started,
        }
    }

    /// Moves the clock to `seconds` after now and resumes the due actions; returns the rotation
    /// as it ended up.
    pub async fn resume_at(&self, seconds: i64) -> keywarden::store::ActionRecord {
        self.offset.store(seconds, Ordering::SeqCst);
        let clock = clock(&self.offset);
        let policies = keywarden::policy::PolicySet::default();
        let engine = actions::Engine {
            store: &self.store,
            connectors: &self.connectors,
            policies: &policies,
            holders: &[],
            clock: &clock,
        };
        actions::resume(engine).await.expect("resume");
        self.store.action(self.started.id).await.expect("action")
    }
}

pub fn clock(offset: &Arc<AtomicI64>) -> impl Fn() -> DateTime<Utc> + Send + Sync + use<> {
    let offset = offset.clone();
    move || Utc::now() + Duration::seconds(offset.load(Ordering::SeqCst))
}
