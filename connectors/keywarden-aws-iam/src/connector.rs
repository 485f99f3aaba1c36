//! The `aws_iam` connector: accounts, clients and the inventory of one account.
//!
//! Which calls, and why (IAM has no cheaper complete source for any of these):
//! - `sts:GetCallerIdentity`, once per account: the account id the inventory is scoped to.
//! - `iam:GenerateCredentialReport` + `GetCredentialReport`, once per account: last use (date,
//!   region, service) of every key in one CSV, and each user's key and certificate slots, which
//!   tell an incremental scan whose keys changed.
//! - `iam:GetAccountAuthorizationDetails` (filter `User`), paged: every user with path, creation
//!   date and tags, up to 1000 per call (instead of `ListUsers` + one `ListUserTags` per user).
//! - per user, only when the ledger cannot answer: `ListAccessKeys` (the report has no key ids),
//!   `ListSigningCertificates` (only where the report shows a certificate) and, when
//!   `ssh_public_keys` is on, `ListSSHPublicKeys` (nothing lists SSH keys in bulk, so these are
//!   refreshed on full scans only).
//! - per key, only when the report cannot answer: `GetAccessKeyLastUsed`, for a key newer than the
//!   report, a slot that cannot be matched to one key, or a use whose region and service the
//!   report does not give.
//!
//! An incremental scan (the default between full refreshes) skips the per-user calls for every
//! user whose report slots match the keys the ledger holds, so an unchanged account costs a
//! handful of calls. It sees key changes as soon as the credential report does (AWS regenerates
//! it at most every four hours); a full refresh lists everything again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_iam::operation::get_account_authorization_details::GetAccountAuthorizationDetailsOutput;
use aws_sdk_iam::types::{EntityType, ReportStateType, StatusType, UserDetail};
use aws_smithy_types_convert::date_time::DateTimeExt;
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use governor::DefaultDirectRateLimiter;
use keywarden_connector::{
    Connector, ConnectorError, Credential, CredentialKind, CredentialStatus, FieldError, Identity,
    IdentityKind, Inventory, InventorySink, KeyActions, Known, LastUse, ScanContext, ScanError,
};
use tokio::sync::{Mutex, OnceCell};

use crate::client::{self, Clients, map_err, persist};
use crate::config::{AwsIamConfig, DeliverRules};
use crate::report::{self, Report, Row};

mod last_use;
mod quarantine;

pub(crate) use last_use::access_key_last_used;
use last_use::set_use_attributes;

/// How many identities go into one batch to the ledger.
const BATCH: usize = 500;

/// Where a last use came from, as recorded in [`LastUse::At::source`].
pub(crate) const FROM_REPORT: &str = "aws_credential_report";
pub(crate) const FROM_API: &str = "aws_access_key_last_used";

/// The connector for one `aws_iam` source.
#[derive(Clone, Debug)]
pub struct AwsIamConnector {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub source: String,
    pub config: AwsIamConfig,
    pub deliver: DeliverRules,
    /// The config's secret stores, for `vault_kv` deliveries.
    pub stores: keywarden_connector::SecretStores,
    limiter: Arc<DefaultDirectRateLimiter>,
    /// Credentials given in code instead of the standard chain's.
    credentials: Option<SharedCredentialsProvider>,
    base: OnceCell<(Clients, String)>,
    accounts: Mutex<HashMap<String, Clients>>,
}

/// The connector state kept between scans (see [`InventorySink::save_state`]).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    /// When every user's keys were last listed.
    full_refresh_at: Option<DateTime<Utc>>,
}

impl AwsIamConnector {
    pub(crate) fn new(
        source: &str,
        config: AwsIamConfig,
        deliver: DeliverRules,
        credentials: Option<SharedCredentialsProvider>,
        stores: keywarden_connector::SecretStores,
    ) -> Self {
        let limiter = client::limiter(config.max_requests_per_second);
        Self {
            inner: Arc::new(Inner {
                source: source.to_owned(),
                config,
                deliver,
                stores,
                limiter,
                credentials,
                base: OnceCell::new(),
                accounts: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Inner {
    /// The clients of keywarden's own credentials and the account they belong to.
    async fn base(&self) -> Result<&(Clients, String), ConnectorError> {
        self.base
            .get_or_try_init(|| async {
                let mut sdk = client::base_config(&self.config).await;
                if let Some(credentials) = &self.credentials {
                    sdk = sdk
                        .into_builder()
                        .credentials_provider(credentials.clone())
                        .build();
                }
                let clients = client::clients(sdk, self.limiter.clone());
                let sts = clients.sts();
                let me = persist(&clients, || async {
                    sts.get_caller_identity()
                        .send()
                        .await
                        .map_err(|err| map_err("sts:GetCallerIdentity", err))
                })
                .await?;
                let account = me
                    .account()
                    .filter(|it| crate::config::is_account_id(it))
                    .ok_or_else(|| {
                        ConnectorError::Permanent(
                            "sts:GetCallerIdentity named no 12-digit account".to_owned(),
                        )
                    })?
                    .to_owned();
                Ok((clients, account))
            })
            .await
    }

    /// The clients acting in `account`: keywarden's own credentials in its own account (unless
    /// the account is listed with a role), else the assumed role.
    pub async fn clients_for(
        &self,
        account: Option<&str>,
    ) -> Result<(Clients, String), ConnectorError> {
        let (base, own) = self.base().await?;
        let listed = account.and_then(|id| self.config.accounts.iter().find(|it| it.id == id));
        let account = match account {
            None => return Ok((base.clone(), own.clone())),
            // keywarden's own account, unless a role is named for it.
            Some(id) if id == own && listed.is_none_or(|it| it.role_arn.is_none()) => {
                return Ok((base.clone(), own.clone()));
            }
            Some(id) => id,
        };
        let mut cache = self.accounts.lock().await;
        if let Some(clients) = cache.get(account) {
            return Ok((clients.clone(), account.to_owned()));
        }
        let role_arn = listed
            .and_then(|it| it.role_arn.clone())
            .unwrap_or_else(|| format!("arn:aws:iam::{account}:role/{}", self.config.role_name));
        let clients = client::assumed(
            &base.sdk,
            &role_arn,
            listed.and_then(|it| it.external_id.as_deref()),
            self.limiter.clone(),
        )
        .await;
        cache.insert(account.to_owned(), clients.clone());
        Ok((clients, account.to_owned()))
    }

    /// The clients for the account of an identity, named by its ARN.
    pub async fn clients_for_arn(&self, arn: &str) -> Result<(Clients, String), ConnectorError> {
        let account = arn_account(arn)
            .ok_or_else(|| ConnectorError::NotFound(format!("`{arn}` is not an IAM user ARN")))?;
        let (_, own) = self.base().await?;
        if account == own {
            return self.clients_for(None).await;
        }
        self.clients_for(Some(account)).await
    }
}

/// The account id in an ARN (`arn:aws:iam::123456789012:user/ci`).
pub(crate) fn arn_account(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    crate::config::is_account_id(account).then_some(account)
}

/// The user name in an IAM user ARN (the last segment of `user/<path>/<name>`).
pub(crate) fn arn_user_name(arn: &str) -> Option<&str> {
    let resource = arn.split(':').nth(5)?;
    let rest = resource.strip_prefix("user/")?;
    rest.rsplit('/').next().filter(|it| !it.is_empty())
}

#[async_trait]
impl Connector for AwsIamConnector {
    fn kind(&self) -> &'static str {
        "aws_iam"
    }

    fn source(&self) -> &str {
        &self.inner.source
    }

    async fn partitions(&self, _cx: &ScanContext) -> Result<Vec<String>, ConnectorError> {
        let config = &self.inner.config;
        let mut ids: Vec<String> = config.accounts.iter().map(|it| it.id.clone()).collect();
        if config.organizations {
            let (base, _) = self.inner.base().await?;
            let orgs = base.organizations();
            let mut token: Option<String> = None;
            loop {
                let page = persist(base, || async {
                    orgs.list_accounts()
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(|err| map_err("organizations:ListAccounts", err))
                })
                .await?;
                for account in page.accounts() {
                    let active = account.status().is_none_or(|it| it.as_str() == "ACTIVE");
                    if let Some(id) = account.id()
                        && active
                    {
                        ids.push(id.to_owned());
                    }
                }
                token = page.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn inventory(
        &self,
        cx: &ScanContext,
        sink: &mut dyn InventorySink,
    ) -> Result<(), ConnectorError> {
        let inner = &self.inner;
        let (clients, account_id) = inner.clients_for(cx.partition.as_deref()).await?;
        // A saved state that no longer reads means a full refresh: more calls, never fewer.
        let previous: State = match cx.known.state().await? {
            Some(saved) => serde_json::from_value(saved).unwrap_or_else(|err| {
                tracing::warn!(source = %inner.source, error = %err, "Unreadable connector state; this scan lists everything.");
                State::default()
            }),
            None => State::default(),
        };
        let refresh = keywarden_connector::duration::time_delta(inner.config.full_refresh)
            .map_err(|err| FieldError::new("full_refresh", err.to_string()))?;
        let full = previous
            .full_refresh_at
            .is_none_or(|at| cx.now - at >= refresh);
        // The report and the first page of users are independent: asked for together, so the
        // scan starts one round trip sooner.
        let (report, first_page) =
            tokio::join!(credential_report(&clients), users_page(&clients, None));
        let first_page = first_page?;
        let report = match report {
            Ok(report) => Some(report),
            Err(err) => {
                // Not allowed, still in progress, unreadable: without the report every key costs
                // a GetAccessKeyLastUsed call and the scan is a full one, but it is complete.
                tracing::warn!(source = %inner.source, error = %err, "No credential report; last use will be read key by key.");
                None
            }
        };
        let full = full || report.is_none();
        tracing::info!(
            source = %inner.source,
            account = %account_id,
            full,
            report_generated_at = ?report.as_ref().and_then(|it| it.generated_at),
            "Inventorying IAM users."
        );

        let scan = UserScan {
            inner,
            clients: &clients,
            account_id: &account_id,
            report: report.as_ref(),
            full,
            known: cx.known.as_ref(),
        };
        scan.pipeline(cx, sink, first_page).await?;
        let state = State {
            full_refresh_at: if full {
                Some(cx.now)
            } else {
                previous.full_refresh_at
            },
        };
        let state = serde_json::to_value(state)
            .map_err(|err| ConnectorError::Permanent(format!("connector state: {err}")))?;
        sink.save_state(state).await
    }

    fn key_actions(&self) -> Option<Arc<dyn KeyActions>> {
        Some(Arc::new(crate::actions::AwsKeyActions {
            inner: self.inner.clone(),
        }))
    }
}

/// Generates (if needed) and reads the account's credential report.
async fn credential_report(clients: &Clients) -> Result<Report, ConnectorError> {
    let mut wait = std::time::Duration::from_millis(200);
    for _ in 0..30 {
        let generated = persist(clients, || async {
            clients
                .iam
                .generate_credential_report()
                .send()
                .await
                .map_err(|err| map_err("iam:GenerateCredentialReport", err))
        })
        .await?;
        if generated.state() == Some(&ReportStateType::Complete) {
            break;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(5));
    }
    let got = persist(clients, || async {
        clients
            .iam
            .get_credential_report()
            .send()
            .await
            .map_err(|err| map_err("iam:GetCredentialReport", err))
    })
    .await?;
    let generated_at = got.generated_time().and_then(|it| it.to_chrono_utc().ok());
    let content = got.content().map(|it| it.as_ref()).ok_or_else(|| {
        ConnectorError::Permanent("iam:GetCredentialReport returned no content".to_owned())
    })?;
    report::parse(content, generated_at).map_err(|err| ConnectorError::Permanent(err.to_string()))
}

/// One page of the account's users with their tags and policies (`marker`: where the last page
/// ended), with the scan-level retry on throttling.
async fn users_page(
    clients: &Clients,
    marker: Option<String>,
) -> Result<GetAccountAuthorizationDetailsOutput, ConnectorError> {
    persist(clients, || async {
        clients
            .iam
            .get_account_authorization_details()
            .filter(EntityType::User)
            .max_items(1000)
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|err| map_err("iam:GetAccountAuthorizationDetails", err))
    })
    .await
}

/// What one user's inventory found.
#[derive(Default)]
struct UserFound {
    identity: Option<Identity>,
    credentials: Vec<Credential>,
    error: Option<ScanError>,
    /// Nothing can be concluded about the user's credentials: the inventory must fail.
    fatal: Option<ConnectorError>,
}

/// Everything the per-user inventory needs.
struct UserScan<'a> {
    inner: &'a Inner,
    clients: &'a Clients,
    account_id: &'a str,
    report: Option<&'a Report>,
    full: bool,
    known: &'a dyn Known,
}

impl UserScan<'_> {
    /// Inventories every user of the account, as three stages run together so that the
    /// configured number of per-user calls stays in flight from the first user to the last:
    /// the pages of `GetAccountAuthorizationDetails` (the next one fetched while the last is
    /// worked on), the users (`concurrency` at once, each refilled as soon as one ends, across
    /// pages), and the batches to the ledger (written while the next users are inventoried).
    ///
    /// Users found wait for the ledger in an unbounded queue: a bounded one would stop polling
    /// per-user futures that may hold a ledger connection the writer needs. The queue holds
    /// at most the account's users (IAM allows 5,000) and drains as fast as the ledger writes.
    async fn pipeline(
        &self,
        cx: &ScanContext,
        sink: &mut dyn InventorySink,
        first_page: GetAccountAuthorizationDetailsOutput,
    ) -> Result<(), ConnectorError> {
        let (mut pages_tx, pages_rx) = futures::channel::mpsc::channel::<Vec<UserDetail>>(1);
        let (found_tx, mut found_rx) = tokio::sync::mpsc::unbounded_channel::<UserFound>();
        let pages = async move {
            let mut page = first_page;
            loop {
                cx.progress.add_total(page.user_detail_list().len() as u64);
                let marker = page.marker().map(str::to_owned);
                let last = !page.is_truncated() || marker.is_none();
                if pages_tx
                    .send(page.user_detail_list().to_vec())
                    .await
                    .is_err()
                    || last
                {
                    // Sent the last page, or the other stages stopped (the ledger failed).
                    return Ok::<(), ConnectorError>(());
                }
                page = users_page(self.clients, marker).await?;
            }
        };
        let users = async move {
            // Boxed, like the futures below, to keep the compiler's `Send` inference simple.
            let users: futures::stream::BoxStream<'_, UserDetail> =
                Box::pin(pages_rx.flat_map(futures::stream::iter));
            // Boxed so the stream's future is `Send` (a plain closure over the user trips the
            // compiler's higher-ranked lifetime inference).
            let mut found = std::pin::pin!(
                users
                    .map(|user| -> futures::future::BoxFuture<'_, UserFound> {
                        Box::pin(async move { self.user(&user).await })
                    })
                    .buffer_unordered(self.inner.config.concurrency)
            );
            while let Some(one) = found.next().await {
                cx.progress.advance(1);
                if found_tx.send(one).is_err() {
                    break; // the ledger failed: stop making calls
                }
            }
        };
        let writer = &mut *sink;
        let record = async move {
            let mut batch = Inventory::default();
            while let Some(found) = found_rx.recv().await {
                if let Some(err) = found.fatal {
                    // Nothing can be concluded about this user's keys: the account fails
                    // rather than marking them gone.
                    return Err(err);
                }
                batch.identities.extend(found.identity);
                batch.credentials.extend(found.credentials);
                batch.errors.extend(found.error);
                if batch.identities.len() >= BATCH {
                    writer.batch(std::mem::take(&mut batch)).await?;
                }
            }
            Ok::<Inventory, ConnectorError>(batch)
        };
        let (paged, (), recorded) = tokio::join!(pages, users, record);
        let rest = recorded?;
        // A failed page leaves the account incomplete: its error wins, the rest is not sent.
        paged?;
        sink.batch(rest).await
    }

    async fn user(&self, user: &UserDetail) -> UserFound {
        let (Some(name), Some(arn)) = (user.user_name(), user.arn()) else {
            // Which ledger entries are this user's cannot be told: conclude nothing.
            return UserFound {
                fatal: Some(ConnectorError::Permanent(
                    "iam:GetAccountAuthorizationDetails listed a user without a name or ARN"
                        .to_owned(),
                )),
                ..UserFound::default()
            };
        };
        let identity = self.identity(user);
        let row = self.report.and_then(|it| it.rows.get(name));
        match self
            .credentials(name, arn, user.path().unwrap_or("/"), row)
            .await
        {
            Ok(credentials) => UserFound {
                identity: Some(identity),
                credentials,
                error: None,
                fatal: None,
            },
            // Deleted since the user list was read: the next scan no longer lists it.
            Err(ConnectorError::NotFound(message)) => {
                tracing::debug!(user = %name, %message, "User vanished during the scan.");
                UserFound::default()
            }
            // Keep what the ledger knew of this user, so nothing is marked gone on the strength
            // of a call that failed.
            Err(err) => match self.known.credentials_of(arn).await {
                Ok(credentials) => UserFound {
                    identity: Some(identity),
                    credentials,
                    error: Some(ScanError {
                        subject: format!("{name} ({arn})"),
                        message: err.to_string(),
                        identity: Some(arn.to_string()),
                    }),
                    fatal: None,
                },
                // Neither IAM nor the ledger can say what the user holds: handing over no keys
                // would mark them gone, so the account's inventory fails as a whole (the ledger
                // then marks nothing gone and resolves nothing).
                Err(ledger) => UserFound {
                    fatal: Some(ConnectorError::Permanent(format!(
                        "user {name} ({arn}): its keys could not be listed ({err}) and the ledger's view of them could not be read ({ledger}); nothing is concluded about this account"
                    ))),
                    ..UserFound::default()
                },
            },
        }
    }

    fn identity(&self, user: &UserDetail) -> Identity {
        let tags: BTreeMap<String, String> = user
            .tags()
            .iter()
            .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
            .collect();
        let config = &self.inner.config;
        Identity {
            external_id: user.arn().unwrap_or_default().to_owned(),
            kind: IdentityKind::IamUser,
            name: user.user_name().unwrap_or_default().to_owned(),
            owner: tags.get(config.owner_tag()).cloned(),
            purpose: tags.get(config.purpose_tag()).cloned(),
            tags,
            confirmed_leaks: quarantine::quarantined_by(user),
        }
    }

    async fn credentials(
        &self,
        name: &str,
        arn: &str,
        path: &str,
        row: Option<&Row>,
    ) -> Result<Vec<Credential>, ConnectorError> {
        // A failed ledger read makes this user's listing a full one: read live, never assumed
        // empty (which would mark its keys gone).
        let (full, prior) = if self.full {
            (true, Vec::new())
        } else {
            match self.known.credentials_of(arn).await {
                Ok(prior) => (false, prior),
                Err(err) => {
                    tracing::warn!(user = %name, error = %err, "The ledger's view of a user could not be read; listing its credentials live.");
                    (true, Vec::new())
                }
            }
        };
        let of_kind = |kind: CredentialKind| -> Vec<Credential> {
            prior.iter().filter(|it| it.kind == kind).cloned().collect()
        };
        // Every credential of this user: the same identity, account and user attributes.
        let credential = |kind: CredentialKind,
                          id: &str,
                          status: CredentialStatus,
                          created_at: Option<DateTime<Utc>>| Credential {
            external_id: id.to_owned(),
            identity_id: arn.to_owned(),
            kind,
            name: format!("{name}/{id}"),
            status,
            created_at,
            not_before: None,
            expires_at: None,
            last_used: LastUse::Unknown,
            algorithm: None,
            key_bits: None,
            fingerprints: Vec::new(),
            public_key: None,
            owner: None,
            purpose: None,
            tags: BTreeMap::new(),
            attributes: BTreeMap::from([
                ("account_id".to_owned(), self.account_id.to_owned()),
                ("user_name".to_owned(), name.to_owned()),
                ("user_path".to_owned(), path.to_owned()),
            ]),
            signs_with: Vec::new(),
        };

        // Access keys: reuse the ledger's when the report's slots show they are unchanged.
        let known_keys = of_kind(CredentialKind::AccessKey);
        let unchanged =
            !full && row.is_some_and(|row| row.key_signature() == key_signature(&known_keys));
        let mut out = Vec::new();
        if unchanged {
            let facts: Vec<(bool, Option<DateTime<Utc>>)> = known_keys
                .iter()
                .map(|it| (it.status == CredentialStatus::Active, it.created_at))
                .collect();
            let keys: Vec<(&str, Option<&Credential>)> = known_keys
                .iter()
                .map(|it| (it.external_id.as_str(), Some(it)))
                .collect();
            let uses = self.key_uses(row, &keys, &facts, false).await?;
            for (mut key, used) in known_keys.into_iter().zip(uses) {
                if let Some((used, region, service)) = used {
                    key.last_used = used;
                    set_use_attributes(&mut key, region.as_deref(), service.as_deref());
                }
                out.push(key);
            }
        } else {
            let listed = list_access_keys(self.clients, name).await?;
            let ids: Vec<&str> = listed
                .iter()
                .map(|key| {
                    key.access_key_id().ok_or_else(|| {
                        ConnectorError::Permanent(format!(
                            "iam:ListAccessKeys {name}: a key without an id"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
            let facts: Vec<(bool, Option<DateTime<Utc>>)> = listed
                .iter()
                .map(|key| {
                    (
                        status(key.status()) == CredentialStatus::Active,
                        key.create_date().and_then(|it| it.to_chrono_utc().ok()),
                    )
                })
                .collect();
            let keys: Vec<(&str, Option<&Credential>)> = ids.iter().map(|id| (*id, None)).collect();
            let uses = self.key_uses(row, &keys, &facts, true).await?;
            for (((key, id), (_, created_at)), used) in
                listed.iter().zip(&ids).zip(&facts).zip(uses)
            {
                let id = *id;
                let mut credential = credential(
                    CredentialKind::AccessKey,
                    id,
                    status(key.status()),
                    *created_at,
                );
                let (used, region, service) = used.unwrap_or((LastUse::Unknown, None, None));
                credential.last_used = used;
                set_use_attributes(&mut credential, region.as_deref(), service.as_deref());
                out.push(credential);
            }
        }

        // Signing certificates: listed only where the report shows one (or has no row).
        let known_certs = of_kind(CredentialKind::Certificate);
        let certs_unchanged = !full
            && row.is_some_and(|row| {
                row.certificate_count() == known_certs.len()
                    && row.certs.iter().filter(|it| it.active).count()
                        == known_certs
                            .iter()
                            .filter(|it| it.status == CredentialStatus::Active)
                            .count()
            });
        if certs_unchanged {
            out.extend(known_certs);
        } else if row.is_none_or(Row::has_certificates) {
            let listed = persist(self.clients, || async {
                self.clients
                    .iam
                    .list_signing_certificates()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|err| map_err(&format!("iam:ListSigningCertificates {name}"), err))
            })
            .await?;
            for cert in listed.certificates() {
                let id = cert.certificate_id().to_owned();
                let mut found = credential(
                    CredentialKind::Certificate,
                    &id,
                    status(Some(cert.status())),
                    cert.upload_date().and_then(|it| it.to_chrono_utc().ok()),
                );
                add_certificate_facts(&mut found, cert.certificate_body());
                out.push(found);
            }
        }

        // SSH public keys, if asked for: nothing lists them in bulk, so they are listed on full
        // refreshes and taken from the ledger in between.
        let ssh = self.inner.config.ssh_public_keys;
        if ssh && full {
            let listed = persist(self.clients, || async {
                self.clients
                    .iam
                    .list_ssh_public_keys()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|err| map_err(&format!("iam:ListSSHPublicKeys {name}"), err))
            })
            .await?;
            for key in listed.ssh_public_keys() {
                let id = key.ssh_public_key_id().to_owned();
                out.push(credential(
                    CredentialKind::SshKey,
                    &id,
                    status(Some(key.status())),
                    key.upload_date().to_chrono_utc().ok(),
                ));
            }
        } else if ssh {
            out.extend(of_kind(CredentialKind::SshKey));
        }
        Ok(out)
    }
}

/// `ListAccessKeys` of one user (at most two keys: one page).
pub(crate) async fn list_access_keys(
    clients: &Clients,
    user: &str,
) -> Result<Vec<aws_sdk_iam::types::AccessKeyMetadata>, ConnectorError> {
    let listed = persist(clients, || async {
        clients
            .iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(|err| map_err(&format!("iam:ListAccessKeys {user}"), err))
    })
    .await?;
    Ok(listed.access_key_metadata().to_vec())
}

/// Adds what the certificate body tells: validity, subject, issuer and the SHA-256 of its DER
/// (`sha256_cert`, to match it elsewhere). A body that does not parse adds nothing: IAM validated
/// it on upload, and the certificate is still inventoried by its id.
fn add_certificate_facts(credential: &mut Credential, body: &str) {
    use sha2::Digest;
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(body.as_bytes()) else {
        return;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&pem.contents) else {
        return;
    };
    let time = |it: x509_parser::time::ASN1Time| DateTime::from_timestamp(it.timestamp(), 0);
    credential.not_before = time(cert.validity().not_before);
    credential.expires_at = time(cert.validity().not_after);
    credential
        .fingerprints
        .push(keywarden_connector::Fingerprint {
            algorithm: "sha256_cert".to_owned(),
            value: hex::encode(sha2::Sha256::digest(&pem.contents)),
        });
    credential
        .attributes
        .insert("subject".to_owned(), cert.subject().to_string());
    credential
        .attributes
        .insert("issuer".to_owned(), cert.issuer().to_string());
}

/// The (active, created second) signature of the ledger's access keys of one user.
fn key_signature(keys: &[Credential]) -> Vec<(bool, i64)> {
    let mut sig: Vec<(bool, i64)> = keys
        .iter()
        .map(|it| {
            (
                it.status == CredentialStatus::Active,
                it.created_at.map_or(0, |at| at.timestamp()),
            )
        })
        .collect();
    sig.sort_unstable();
    sig
}

fn status(status: Option<&StatusType>) -> CredentialStatus {
    match status {
        Some(StatusType::Active) => CredentialStatus::Active,
        _ => CredentialStatus::Inactive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_account_and_user() {
        let arn = "arn:aws:iam::123456789012:user/ci/deploy/publisher";
        assert_eq!(arn_account(arn), Some("123456789012"));
        assert_eq!(arn_user_name(arn), Some("publisher"));
        assert_eq!(
            arn_user_name("arn:aws:iam::123456789012:user/ci"),
            Some("ci")
        );
        assert_eq!(arn_account("arn:aws:iam::12:user/ci"), None);
        assert_eq!(arn_user_name("arn:aws:iam::123456789012:role/ci"), None);
    }
}
