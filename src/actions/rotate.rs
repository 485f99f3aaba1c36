//! `rotate`: replace an access key without leaving its consumer without a working one.
//!
//! check → (retire_inactive) → create → deliver → verify → overlap (waits) → deactivate →
//! grace (waits) → delete.
//! - `create` records its attempt before calling `CreateAccessKey`; entered again, it deletes the
//!   key that attempt made (the one key the user holds that was not there when `create` was
//!   entered: found by key ids, not by the host's clock) — but only if an attempt was recorded; a
//!   key that appeared otherwise is someone else's and the rotation is refused. It then creates
//!   the new key, records its id (state `deliver`) and delivers it at once: the secret is only
//!   ever in memory between creation and delivery.
//! - `deliver`, entered again after a crash, looks at the destination: if it holds the new key the
//!   delivery happened; if not, the unrecoverable new key is deleted and `create` runs again. So
//!   the consumer gets exactly one new key, once.
//! - `verify` reads the key back from the destination and proves it with the key itself.
//! - `overlap` ends early only when the new key has been used since the delivery and the old one
//!   has not; otherwise both stay active for the whole overlap period.
//! - A credential its source cannot switch off (an AppRole secret-id: no `deactivate_key`, but
//!   `revoke_key`) skips the two-key rules (a role holds any number), `deactivate` and `grace`:
//!   after the overlap, `delete` records when the old and the new one were made, `revoke_old`
//!   revokes the old one and `revoke_minted` the tokens its logins minted before the new one was
//!   made — only where the role holds no other secret-id whose tokens could not be told apart.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_connector::{Capability, ConnectorError, KeyHolder, LastUse};
use serde::{Deserialize, Serialize};

use super::crash_point;
use super::guard;
use super::machine::{Fenced, Machine, Next, StepCx, StepError, after, when};

/// The states of a rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub(crate) enum Rotate {
    /// Re-read the user's keys; refuse what would be unsafe.
    Check,
    /// Delete the user's other, inactive key to make room.
    RetireInactive { retire: String },
    /// Create and deliver the new key. `existing`: the key ids the user held when this state was
    /// entered. `attempted`: written just before `CreateAccessKey` is called (and cleared when
    /// the source said no), so a key not in `existing` is taken for an interrupted attempt's
    /// orphan only when an attempt may have made it; otherwise it is someone else's.
    Create {
        existing: Vec<String>,
        #[serde(default)]
        attempted: bool,
    },
    /// The new key was created and may or may not have been delivered.
    Deliver {
        #[serde(default)]
        existing: Vec<String>,
        new_key: String,
        token: String,
    },
    Verify {
        new_key: String,
        delivered_at: DateTime<Utc>,
    },
    Overlap {
        new_key: String,
        delivered_at: DateTime<Utc>,
    },
    Deactivate {
        new_key: String,
        delivered_at: DateTime<Utc>,
    },
    Grace {
        #[serde(default)]
        new_key: Option<String>,
        deactivated_at: DateTime<Utc>,
    },
    Delete {
        #[serde(default)]
        new_key: Option<String>,
    },
    /// Revoke what the old credential (one that cannot be switched off) minted between `since`
    /// and `until` (when the old and the new one were made), while the old one can still be
    /// read to tell its tokens apart.
    RevokeMinted {
        new_key: String,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    },
    /// Revoke the old credential.
    RevokeOld { new_key: String },
}

/// Whether the source switches the rotated credential off and on (an access key); if not (a
/// secret-id), it is revoked after the overlap and the two-key rules do not apply.
async fn switches_off(cx: &StepCx<'_>, actions: Fenced<'_, '_>) -> Result<bool, StepError> {
    let kind = cx
        .engine
        .store
        .find_credential(cx.key())
        .await?
        .into_iter()
        .find(|it| it.source == cx.record.source)
        .map(|it| it.credential.kind);
    Ok(kind.is_none_or(|kind| {
        actions
            .capabilities(kind)
            .contains(&Capability::DeactivateKey)
    }))
}

/// Why rotating `key` of this holder would be unsafe, if it would.
pub(crate) fn refusal(key: &str, holder: &KeyHolder) -> Option<String> {
    let Some(old) = holder.keys.iter().find(|it| it.id == key) else {
        return Some(format!("{} no longer holds key {key}", holder.name));
    };
    if !old.active {
        return Some(format!(
            "key {key} of {} is inactive: nothing uses it, so there is nothing to rotate; delete it instead",
            holder.name
        ));
    }
    if let Some(other) = holder.keys.iter().find(|it| it.id != key && it.active) {
        return Some(format!(
            "both access keys of {} are active ({key} and {}): AWS allows two keys per user, so a new \
             key would need one of them gone, and keywarden cannot tell which one the consumers \
             still use. Deactivate the one not in use (or rotate it away), then rotate again",
            holder.name, other.id
        ));
    }
    None
}

#[async_trait]
impl Machine for Rotate {
    fn step_name(&self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::RetireInactive { .. } => "retire_inactive",
            Self::Create { .. } => "create",
            Self::Deliver { .. } => "deliver",
            Self::Verify { .. } => "verify",
            Self::Overlap { .. } => "overlap",
            Self::Deactivate { .. } => "deactivate",
            Self::Grace { .. } => "grace",
            Self::Delete { .. } => "delete",
            Self::RevokeOld { .. } => "revoke_old",
            Self::RevokeMinted { .. } => "revoke_minted",
        }
    }

    async fn step(self, cx: &StepCx<'_>) -> Result<Next<Self>, StepError> {
        let actions = cx.keys()?;
        let (key, identity) = (cx.key(), cx.identity());
        Ok(match self {
            Self::Check if !switches_off(cx, actions).await? => {
                check_revocable(cx, actions).await?
            }
            Self::Check => {
                let holder = actions.keys(identity).await?;
                if let Some(reason) = refusal(key, &holder) {
                    return Ok(Next::Refused(reason));
                }
                if let Err(err) = actions.destination(identity) {
                    return Ok(Next::Refused(err.to_string()));
                }
                if let Some(live) = holder.keys.iter().find(|it| it.id == key)
                    && let Some(reason) = guard::condition_lapsed(cx, live, &holder.keys).await?
                {
                    return Ok(Next::Skipped(reason));
                }
                match holder.keys.iter().find(|it| it.id != key) {
                    Some(other) => Next::Step(
                        Self::RetireInactive {
                            retire: other.id.clone(),
                        },
                        Some(format!("{} holds inactive key {}", holder.name, other.id)),
                    ),
                    None => enter_create(actions, identity).await?,
                }
            }
            Self::RetireInactive { retire } => {
                // Look again: someone may have switched it back on since `check`.
                let holder = actions.keys(identity).await?;
                if holder.keys.iter().any(|it| it.id == retire && it.active) {
                    return Ok(Next::Refused(format!(
                        "{retire} of {} was switched back on; both keys are active now",
                        holder.name
                    )));
                }
                actions.delete_key(identity, &retire).await?;
                crash_point("retire_inactive");
                enter_create(actions, identity).await?
            }
            Self::Create {
                existing,
                attempted,
            } => create(cx, actions, existing, attempted).await?,
            Self::Deliver {
                existing,
                new_key,
                token: _,
            } => {
                // Entered again after an interruption: the secret is gone from memory, so either
                // the destination has the new key or the key is useless.
                if actions.delivered_id(identity).await?.as_deref() == Some(new_key.as_str()) {
                    Next::Step(
                        Self::Verify {
                            new_key: new_key.clone(),
                            delivered_at: cx.now(),
                        },
                        Some(format!("{new_key} found at the destination")),
                    )
                } else {
                    actions.delete_key(identity, &new_key).await?;
                    Next::Step(
                        Self::Create {
                            existing,
                            attempted: false,
                        },
                        Some(format!(
                            "{new_key} was never delivered; deleted it to create another"
                        )),
                    )
                }
            }
            Self::Verify {
                new_key,
                delivered_at,
            } => {
                let Some(delivered) = actions.delivered(identity).await? else {
                    return Ok(Next::Failed(format!(
                        "the destination no longer holds a key (expected {new_key})"
                    )));
                };
                if delivered.id != new_key {
                    return Ok(Next::Failed(format!(
                        "the destination holds {} instead of {new_key}: something else changed it",
                        delivered.id
                    )));
                }
                actions.verify(identity, &delivered).await?;
                crash_point("verify");
                let timing = actions.rotation_timing();
                let until = after(delivered_at, timing.overlap);
                // Look again once last-use data has settled: the old key may go before `until`.
                let check = until.min(after(delivered_at, timing.last_use_settle));
                Next::Wait(
                    Self::Overlap {
                        new_key: new_key.clone(),
                        delivered_at,
                    },
                    check,
                    format!(
                        "{new_key} works; both keys stay active until {} at the latest",
                        when(until)
                    ),
                )
            }
            Self::Overlap {
                new_key,
                delivered_at,
            } => overlap(cx, actions, new_key, delivered_at).await?,
            Self::Deactivate { new_key, .. } if !switches_off(cx, actions).await? => Next::Step(
                Self::Delete {
                    new_key: Some(new_key),
                },
                Some(format!("{key} cannot be switched off: it is revoked now")),
            ),
            Self::Deactivate { new_key, .. } => {
                actions.set_active(identity, key, false).await?;
                crash_point("deactivate");
                let now = cx.now();
                let until = after(now, actions.rotation_timing().grace);
                Next::Wait(
                    Self::Grace {
                        new_key: Some(new_key),
                        deactivated_at: now,
                    },
                    until,
                    format!("{key} deactivated; deleted after {}", when(until)),
                )
            }
            Self::Grace { new_key, .. } => Next::Step(Self::Delete { new_key }, None),
            Self::Delete {
                new_key: Some(new_key),
            } if !switches_off(cx, actions).await? => {
                let since = actions
                    .key(identity, key)
                    .await?
                    .and_then(|it| it.created_at);
                let until = actions
                    .key(identity, &new_key)
                    .await?
                    .and_then(|it| it.created_at);
                Next::Step(
                    Self::RevokeMinted {
                        new_key,
                        since,
                        until,
                    },
                    None,
                )
            }
            Self::RevokeMinted {
                new_key,
                since,
                until,
            } => {
                let report = revoke_minted(cx, actions, &new_key, since, until).await?;
                crash_point("revoke_minted");
                Next::Step(Self::RevokeOld { new_key }, Some(report))
            }
            Self::RevokeOld { new_key } => {
                actions.revoke(identity, key).await?;
                crash_point("revoke_old");
                Next::Done(format!(
                    "{key} revoked; {new_key} delivered to {} replaces it",
                    actions
                        .destination(identity)
                        .unwrap_or_else(|_| "its destination".to_owned())
                ))
            }
            Self::Delete { .. } => {
                // Someone may have switched the old key back on to roll back: leave it then.
                let holder = actions.keys(identity).await?;
                if holder.keys.iter().any(|it| it.id == key && it.active) {
                    return Ok(Next::Failed(format!(
                        "{key} was switched back on during the grace period; left alone"
                    )));
                }
                actions.delete_key(identity, key).await?;
                crash_point("delete");
                Next::Done(format!("{key} deleted"))
            }
        })
    }

    async fn cancel(self, cx: &StepCx<'_>) -> Result<String, StepError> {
        let actions = cx.keys()?;
        let (key, identity) = (cx.key(), cx.identity());
        let destination = actions
            .destination(identity)
            .unwrap_or_else(|_| "its destination".to_owned());
        Ok(match self {
            Self::Check | Self::RetireInactive { .. } => {
                format!("stopped before a new key was created; {key} is as it was")
            }
            Self::Create {
                existing,
                attempted,
            } => match orphans(actions, identity, &existing).await? {
                Orphans::None => {
                    format!("stopped before a new key was created; {key} is as it was")
                }
                Orphans::One(_) | Orphans::Several(_) if !switches_off(cx, actions).await? => {
                    format!(
                        "stopped at creating a new credential; {key} is as it was (one an \
                         interrupted attempt may have made is not told apart from others', and \
                         expires with its TTL)"
                    )
                }
                Orphans::One(orphan) if !attempted => format!(
                    "{orphan} appeared, but keywarden had not tried to create a key: left alone"
                ),
                Orphans::One(orphan) => {
                    actions.delete_key(identity, &orphan).await?;
                    format!(
                        "deleted {orphan}, created by an interrupted attempt and never delivered"
                    )
                }
                Orphans::Several(ids) => format!(
                    "keys {} appeared that keywarden did not record; left for a person",
                    ids.join(", ")
                ),
            },
            Self::Deliver { new_key, .. } => {
                if actions.delivered_id(identity).await?.as_deref() == Some(new_key.as_str()) {
                    format!("new key {new_key} was delivered to {destination} and is kept")
                } else {
                    actions.delete_key(identity, &new_key).await?;
                    format!("new key {new_key} was never delivered and is deleted")
                }
            }
            Self::Verify { new_key, .. }
            | Self::Overlap { new_key, .. }
            | Self::Deactivate { new_key, .. } => {
                format!("new key {new_key} was delivered to {destination} and is kept")
            }
            Self::RevokeMinted { new_key, .. } => format!(
                "new {new_key} was delivered to {destination} and is kept; {key} is not revoked \
                 and some of what it minted may be"
            ),
            Self::RevokeOld { new_key } => format!(
                "new {new_key} was delivered to {destination} and is kept; {key} may have been \
                 revoked"
            ),
            Self::Grace { new_key, .. } | Self::Delete { new_key } => format!(
                "{key} is deactivated; new key {} was delivered to {destination} and is kept",
                new_key.as_deref().unwrap_or("(unknown)")
            ),
        })
    }
}

/// `check` of a credential that cannot be switched off: it must still exist and have a
/// destination; a policy's condition is re-checked on it; the identity's other credentials are
/// left alone.
async fn check_revocable(
    cx: &StepCx<'_>,
    actions: Fenced<'_, '_>,
) -> Result<Next<Rotate>, StepError> {
    let (key, identity) = (cx.key(), cx.identity());
    let holder = actions.keys(identity).await?;
    let Some(live) = holder.keys.iter().find(|it| it.id == key) else {
        return Ok(Next::Refused(format!(
            "{} no longer holds {key}",
            holder.name
        )));
    };
    if let Err(err) = actions.destination(identity) {
        return Ok(Next::Refused(err.to_string()));
    }
    if let Some(reason) = guard::condition_lapsed(cx, live, &holder.keys).await? {
        return Ok(Next::Skipped(reason));
    }
    enter_create(actions, identity).await
}

/// Revokes what the old credential minted before the new one was made, as far as its source can
/// tell those apart (a secret-id's tokens by its metadata, which Vault copies onto them); what it
/// cannot tell apart is left to expire. Returns the report.
async fn revoke_minted(
    cx: &StepCx<'_>,
    actions: Fenced<'_, '_>,
    new_key: &str,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<String, StepError> {
    let (key, identity) = (cx.key(), cx.identity());
    let (Some(_), Some(_)) = (since, until) else {
        return Ok(format!(
            "without {key}'s and {new_key}'s creation times what {key} minted is not told \
             apart, and is left to expire"
        ));
    };
    Ok(
        match actions.revoke_minted(identity, key, since, until).await {
            Ok(revoked) if revoked.is_empty() => {
                format!("{key} had minted nothing still valid before {new_key} was made")
            }
            Ok(revoked) => format!(
                "revoked what {key} minted before {new_key} was made: {}",
                revoked.join(", ")
            ),
            Err(ConnectorError::Refused(why)) => format!("what {key} minted is kept: {why}"),
            Err(err) => return Err(err.into()),
        },
    )
}

/// Keys the user holds that are not in `existing`.
enum Orphans {
    None,
    One(String),
    Several(Vec<String>),
}

async fn orphans(
    actions: Fenced<'_, '_>,
    identity: &str,
    existing: &[String],
) -> Result<Orphans, ConnectorError> {
    let holder = actions.keys(identity).await?;
    let mut unknown: Vec<String> = holder
        .keys
        .into_iter()
        .filter(|it| !existing.contains(&it.id))
        .map(|it| it.id)
        .collect();
    Ok(match unknown.len() {
        0 => Orphans::None,
        1 => Orphans::One(unknown.remove(0)),
        _ => Orphans::Several(unknown),
    })
}

/// Enters `create`, recording the keys the user holds now.
async fn enter_create(actions: Fenced<'_, '_>, identity: &str) -> Result<Next<Rotate>, StepError> {
    let holder = actions.keys(identity).await?;
    let existing = holder.keys.iter().map(|it| it.id.clone()).collect();
    Ok(Next::Step(
        Rotate::Create {
            existing,
            attempted: false,
        },
        None,
    ))
}

/// Creates the new key and delivers it at once.
async fn create(
    cx: &StepCx<'_>,
    actions: Fenced<'_, '_>,
    existing: Vec<String>,
    attempted: bool,
) -> Result<Next<Rotate>, StepError> {
    let identity = cx.identity();
    // A role's secret-ids are made by others too (a CI job may make one per run): one that
    // appeared cannot be told to be an interrupted attempt's, so none is destroyed or refused
    // (an interrupted attempt's, whose value is lost, expires with its TTL).
    let revocable = !switches_off(cx, actions).await?;
    // A key that was not there when this state was entered, found after an attempt to create
    // one was recorded, is that attempt's (each attempt creates one key, after deleting the one
    // before): its secret is lost, so it goes. Told by key ids, so the host's clock does not
    // matter. A key that appeared with no attempt recorded, or more than one, is someone else's:
    // a person decides.
    match orphans(actions, identity, &existing).await? {
        Orphans::None => {}
        Orphans::One(_) | Orphans::Several(_) if revocable => {
            tracing::info!(
                action = cx.record.id,
                "Credentials appeared since the rotation began; left alone."
            );
        }
        Orphans::One(orphan) if attempted => {
            tracing::warn!(action = cx.record.id, key = %orphan, "Deleting a key left by an interrupted rotation.");
            actions.delete_key(identity, &orphan).await?;
        }
        Orphans::One(orphan) => {
            return Ok(Next::Refused(format!(
                "key {orphan} appeared since the rotation began, and keywarden had not tried to \
                 create one: someone else is managing this user's keys; left alone"
            )));
        }
        Orphans::Several(ids) => {
            return Ok(Next::Refused(format!(
                "keys {} appeared since the rotation began and keywarden created at most one; \
                 someone else is creating keys for this user",
                ids.join(", ")
            )));
        }
    }
    let marked = |attempted| Rotate::Create {
        existing: existing.clone(),
        attempted,
    };
    cx.persist(&marked(true), "creating a new key".to_owned())
        .await?;
    // The action's id and when it was made: unique even across a ledger made afresh.
    let attempt = format!(
        "keywarden-action-{}-{}",
        cx.record.id,
        cx.record.created_at.timestamp()
    );
    let new = match actions.create_key(identity, cx.key(), &attempt).await {
        Ok(new) => new,
        // E.g. LimitExceeded: the user holds two keys after all. Not a retry loop.
        Err(ConnectorError::Refused(reason)) => {
            cx.persist(&marked(false), format!("not created: {reason}"))
                .await?;
            return Ok(Next::Refused(reason));
        }
        // A passing failure may have created the key: the attempt stays recorded.
        Err(err) if err.is_retryable() => return Err(err.into()),
        Err(err) => {
            cx.persist(&marked(false), format!("not created: {err}"))
                .await?;
            return Err(err.into());
        }
    };
    crash_point("create");
    // One-way hashes of the new secret, while it is in memory, so a leak report that carries only
    // a hash of it (detect-secrets, GitGuardian) is matched to this key; never the secret.
    let hashes = [
        (
            "sha1",
            crate::leaks::sha1_hex(new.secret.expose().as_bytes()),
        ),
        (
            "hmsl",
            crate::leaks::hmsl_hex(new.secret.expose().as_bytes()),
        ),
    ];
    cx.engine
        .store
        .record_secret_hashes(&cx.record.source, &new.id, &hashes, cx.now())
        .await?;
    let token = format!("keywarden-action-{}-{}", cx.record.id, new.id);
    // The new key's id is recorded before delivery; the secret never is.
    let recorded = Rotate::Deliver {
        existing: existing.clone(),
        new_key: new.id.clone(),
        token: token.clone(),
    };
    cx.persist(&recorded, format!("created {}", new.id)).await?;
    crash_point("deliver_recorded");
    let delivery = actions.deliver(identity, &new, &token).await;
    let new_key = new.id.clone();
    drop(new);
    if let Err(err) = delivery {
        return undelivered(cx, actions, &new_key, err).await;
    }
    crash_point("deliver");
    Ok(Next::Step(
        Rotate::Verify {
            new_key,
            delivered_at: cx.now(),
        },
        Some(format!("delivered to {}", actions.destination(identity)?)),
    ))
}

/// A delivery failed. A permanent failure (refused, invalid destination) wrote nothing: the new
/// key is useless and is deleted. A passing one (a timeout) may have written: if the destination
/// holds the new key the delivery happened; if it holds another, the key is deleted; if it cannot
/// be read, the action stays at `deliver` for `actions resume` to look again.
async fn undelivered(
    cx: &StepCx<'_>,
    actions: Fenced<'_, '_>,
    new_key: &str,
    err: ConnectorError,
) -> Result<Next<Rotate>, StepError> {
    let identity = cx.identity();
    if err.is_retryable() {
        match actions.delivered_id(identity).await {
            Ok(Some(id)) if id == new_key => {
                return Ok(Next::Step(
                    Rotate::Verify {
                        new_key: new_key.to_owned(),
                        delivered_at: cx.now(),
                    },
                    Some(format!(
                        "delivered to {} (despite: {err})",
                        actions.destination(identity)?
                    )),
                ));
            }
            Ok(_) => {}
            Err(check) => {
                tracing::error!(action = cx.record.id, error = %check, "Cannot tell whether the key was delivered; `actions resume` will look again.");
                return Err(err.into());
            }
        }
    }
    tracing::warn!(action = cx.record.id, key = %new_key, error = %err, "Delivery failed; deleting the undelivered key.");
    actions.delete_key(identity, new_key).await?;
    Err(err.into())
}

/// The overlap: both keys active until the period is over, or until the new key has been used
/// since the delivery while the old one has not (read once last use has settled).
async fn overlap(
    cx: &StepCx<'_>,
    actions: Fenced<'_, '_>,
    new_key: String,
    delivered_at: DateTime<Utc>,
) -> Result<Next<Rotate>, StepError> {
    let (key, identity) = (cx.key(), cx.identity());
    let timing = actions.rotation_timing();
    let now = cx.now();
    let until = after(delivered_at, timing.overlap);
    let settled = after(delivered_at, timing.last_use_settle);
    let state = Rotate::Overlap {
        new_key: new_key.clone(),
        delivered_at,
    };
    let deactivate = |detail: String| {
        Next::Step(
            Rotate::Deactivate {
                new_key: new_key.clone(),
                delivered_at,
            },
            Some(detail),
        )
    };
    if now >= until {
        return Ok(deactivate("overlap period over".to_owned()));
    }
    if now < settled {
        return Ok(Next::Wait(
            state,
            until.min(settled),
            "waiting for the overlap period".to_owned(),
        ));
    }
    let new_used = actions.last_used(identity, &new_key).await?;
    let old_used = actions.last_used(identity, key).await?;
    let new_since = new_used.at().is_some_and(|at| at >= delivered_at);
    let old_since = match &old_used {
        LastUse::Never => Some(false),
        LastUse::At { at, .. } => Some(*at >= delivered_at),
        LastUse::Unknown => None,
    };
    let recheck = until.min(
        now.checked_add_signed(chrono::TimeDelta::hours(1))
            .unwrap_or(until),
    );
    Ok(match (new_since, old_since) {
        (true, Some(false)) => deactivate(format!(
            "{new_key} in use since the delivery and {key} not ({})",
            match old_used.at() {
                Some(at) => format!("last used {}", when(at)),
                None => "never used".to_owned(),
            }
        )),
        (false, _) => Next::Wait(
            state,
            recheck,
            format!("{new_key} not used since the delivery yet; {key} stays active"),
        ),
        (true, Some(true)) => Next::Wait(
            state,
            recheck,
            format!(
                "{key} last used {}, after the delivery",
                old_used.at().map(when).unwrap_or_default()
            ),
        ),
        (true, None) => Next::Wait(
            state,
            recheck,
            format!("{key}: last use unknown; waiting for the overlap period"),
        ),
    })
}
