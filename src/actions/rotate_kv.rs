//! `rotate_kv`: rotate a secret whose value keywarden makes (a Vault KV v2 secret) — draw a new
//! value as the policy's `enforce.generate` says and write it as the secret's next version,
//! check-and-set on the version the rotation began from, keeping the secret's other fields.
//!
//! check → write → done.
//! - `check`: the secret as its store shows it now (its current version, and when that was
//!   written); a policy's condition re-checked on that, not on the ledger's copy.
//! - `write`: re-reads the secret. At the version `check` saw, a value is drawn, its SHA-256
//!   recorded in the state (and its leak-report hashes in the ledger) before the field alone is
//!   written, check-and-set on that version (a KV v2 PATCH: the other fields keep their values
//!   and types; a write that raced another fails rather than overwriting it). A version past it
//!   is this action's write only when the field's hash is the one recorded (a crash after the
//!   write): done, nothing written twice. Anyone else's write sends the action back to `check`,
//!   which re-checks the policy on the secret as it is now. A version below it (the secret was
//!   deleted and made again) is refused. The value is only ever in memory.

use async_trait::async_trait;
use keywarden_connector::{ConnectorError, HeldKey, LastUse, Secret, SecretPath, SecretStore};
use rand::TryRngCore;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};

use super::crash_point;
use super::guard;
use super::machine::{Machine, Next, StepCx, StepError};
use super::{ActionError, connector_of};
use crate::policy::generate::Generator;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub(crate) enum RotateKv {
    Check {
        generate: Option<Generator>,
        /// How often someone else's write sent the rotation back here.
        #[serde(default, skip_serializing_if = "is_zero")]
        rechecks: u32,
    },
    /// Write the new value as version `version + 1`. `drawn`: the SHA-256 (hex) of the value
    /// of the attempt under way, recorded before it is written.
    Write {
        generate: Generator,
        version: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drawn: Option<String>,
        /// The SHA-256 of the field when `check` read it: a later version still holding it was
        /// not a rotation (a rewrite of the old, perhaps leaked, value).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        #[serde(default, skip_serializing_if = "is_zero")]
        rechecks: u32,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// After this many writes by someone else, the rotation waits before it checks again.
const RECHECKS_BEFORE_WAIT: u32 = 2;
const RECHECK_WAIT: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

fn sha256_hex(value: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

/// Draws a value: `length` characters, each uniformly from `characters`, from the OS generator.
pub(crate) fn draw(generate: &Generator) -> Result<Secret, ConnectorError> {
    let characters: Vec<char> = generate.characters.chars().collect();
    let mut rng = rand::rngs::OsRng.unwrap_err();
    let mut value = String::with_capacity(generate.length as usize);
    for _ in 0..generate.length {
        let Some(it) = characters.choose(&mut rng) else {
            return Err(ConnectorError::Permanent(
                "the generator has no characters".to_owned(),
            ));
        };
        value.push(*it);
    }
    Ok(Secret::new(value))
}

/// The secret store of the action's source and where in it the secret is.
async fn target(
    cx: &StepCx<'_>,
) -> Result<(std::sync::Arc<dyn SecretStore>, SecretPath), StepError> {
    let connector = connector_of(cx.engine.connectors, &cx.record.source).ok_or_else(|| {
        ActionError::NotFound(format!(
            "source `{}` is not in the configuration",
            cx.record.source
        ))
    })?;
    let store = connector.secret_store().ok_or_else(|| {
        ActionError::Unsupported(format!(
            "source `{}` ({}) holds no secrets keywarden writes",
            cx.record.source,
            connector.kind()
        ))
    })?;
    let credential = cx
        .engine
        .store
        .find_credential(cx.key())
        .await?
        .into_iter()
        .find(|it| it.source == cx.record.source)
        .ok_or_else(|| ActionError::NotFound(format!("{} is not in the ledger", cx.key())))?;
    let attribute = |name: &str| credential.credential.attributes.get(name).cloned();
    let (Some(namespace), Some(mount)) = (attribute("namespace"), attribute("mount")) else {
        return Err(
            ActionError::Unsupported(format!("{} names no namespace and mount", cx.key())).into(),
        );
    };
    if attribute("kv_version").as_deref() != Some("2") {
        return Err(ConnectorError::Refused(format!(
            "{} is a KV v1 secret: without versions it cannot be written check-and-set",
            cx.key()
        ))
        .into());
    }
    let path = cx
        .key()
        .strip_prefix(&format!("{namespace}{mount}"))
        .ok_or_else(|| {
            ActionError::Unsupported(format!("{} is not under {namespace}{mount}", cx.key()))
        })?
        .to_owned();
    Ok((
        store,
        SecretPath {
            namespace,
            mount,
            path,
        },
    ))
}

impl RotateKv {
    async fn check(
        cx: &StepCx<'_>,
        generate: Option<Generator>,
        rechecks: u32,
    ) -> Result<Next<Self>, StepError> {
        let Some(generate) = generate else {
            return Ok(Next::Refused(format!(
                "{} is rotated only by a policy that says how to make its value \
                 (`enforce.generate`)",
                cx.key()
            )));
        };
        let (store, at) = target(cx).await?;
        let Some(held) = store.read(&at).await? else {
            return Ok(Next::Refused(format!(
                "{at} has no current version to rotate (deleted or destroyed)"
            )));
        };
        // The age the store shows now: the ledger's may be a scan old.
        let live = HeldKey {
            id: cx.key().to_owned(),
            active: true,
            created_at: held.created_at,
        };
        if let Some(reason) =
            guard::condition_lapsed_with(cx, &live, std::slice::from_ref(&live), LastUse::Unknown)
                .await?
        {
            return Ok(Next::Skipped(reason));
        }
        let before = held
            .fields
            .get(&generate.field)
            .map(|it| sha256_hex(it.expose()));
        Ok(Next::Step(
            Self::Write {
                generate,
                version: held.version,
                drawn: None,
                before,
                rechecks,
            },
            Some(format!("{at} is at version {}", held.version)),
        ))
    }

    async fn write(cx: &StepCx<'_>, state: WriteState) -> Result<Next<Self>, StepError> {
        let WriteState {
            generate,
            version,
            drawn,
            before,
            rechecks,
        } = state;
        let (store, at) = target(cx).await?;
        let Some(held) = store.read(&at).await? else {
            return Ok(Next::Failed(format!(
                "{at} lost its current version during the rotation"
            )));
        };
        let field = held
            .fields
            .get(&generate.field)
            .map(|it| sha256_hex(it.expose()));
        if held.version > version {
            if drawn.is_some() && field == drawn {
                // Written before an interruption (its hashes were recorded before the write).
                return Ok(Next::Done(format!(
                    "{at} is at version {}, holding the value this rotation wrote: nothing \
                     written again",
                    held.version
                )));
            }
            let rechecks = rechecks.saturating_add(1);
            let line = format!(
                "someone else wrote version {} of {at} since version {version}",
                held.version
            );
            let again = if before.is_some() && field == before {
                // The same value written again (the old, perhaps leaked, one): not a rotation,
                // so no re-check of the policy on the new version's age.
                Self::Write {
                    generate,
                    version: held.version,
                    drawn: None,
                    before,
                    rechecks,
                }
            } else {
                Self::Check {
                    generate: Some(generate),
                    rechecks,
                }
            };
            if rechecks > RECHECKS_BEFORE_WAIT {
                let until = cx
                    .now()
                    .checked_add_signed(RECHECK_WAIT)
                    .unwrap_or(cx.now());
                return Ok(Next::Wait(
                    again,
                    until,
                    format!("{line}; waiting before trying again"),
                ));
            }
            return Ok(Next::Step(again, Some(format!("{line}: checked again"))));
        }
        if held.version < version {
            return Ok(Next::Refused(format!(
                "{at} is at version {}, below the {version} the rotation began from: it was \
                 deleted and made again; left alone",
                held.version
            )));
        }
        drop(held);
        let value = draw(&generate)?;
        // Recorded before the write, so a crash after it loses neither (a value that never
        // reaches the store, its write refused, leaves hashes that match nothing in use).
        let hashes = [
            ("sha1", crate::leaks::sha1_hex(value.expose().as_bytes())),
            ("hmsl", crate::leaks::hmsl_hex(value.expose().as_bytes())),
        ];
        cx.engine
            .store
            .record_secret_hashes(&cx.record.source, cx.key(), &hashes, cx.now())
            .await?;
        let attempt = Self::Write {
            generate: generate.clone(),
            version,
            drawn: Some(sha256_hex(value.expose())),
            before,
            rechecks,
        };
        cx.persist(&attempt, format!("writing `{}` of {at}", generate.field))
            .await?;
        crash_point("kv_drawn");
        cx.fence().await?;
        let written = store
            .set_field(&at, &generate.field, &value, version)
            .await?;
        drop(value);
        crash_point("kv_written");
        Ok(Next::Done(format!(
            "wrote version {written} of {at}: `{}` generated ({} characters, {:.0} bits), its \
             other fields kept",
            generate.field,
            generate.length,
            generate.bits()
        )))
    }
}

/// The fields of [`RotateKv::Write`].
struct WriteState {
    generate: Generator,
    version: u64,
    drawn: Option<String>,
    before: Option<String>,
    rechecks: u32,
}

#[async_trait]
impl Machine for RotateKv {
    fn step_name(&self) -> &'static str {
        match self {
            Self::Check { .. } => "check",
            Self::Write { .. } => "write",
        }
    }

    async fn step(self, cx: &StepCx<'_>) -> Result<Next<Self>, StepError> {
        match self {
            Self::Check { generate, rechecks } => Self::check(cx, generate, rechecks).await,
            Self::Write {
                generate,
                version,
                drawn,
                before,
                rechecks,
            } => {
                let state = WriteState {
                    generate,
                    version,
                    drawn,
                    before,
                    rechecks,
                };
                Self::write(cx, state).await
            }
        }
    }

    async fn cancel(self, cx: &StepCx<'_>) -> Result<String, StepError> {
        Ok(match self {
            Self::Check { .. } => format!("stopped before {} was changed", cx.key()),
            Self::Write { version, .. } => format!(
                "stopped at writing {}: it may be past version {version} now",
                cx.key()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_length_and_only_the_characters_asked_for() {
        let generate = Generator {
            field: "password".to_owned(),
            length: 40,
            characters: "abc".to_owned(),
        };
        let one = draw(&generate).expect("value");
        let two = draw(&generate).expect("value");
        assert_eq!(one.expose().chars().count(), 40);
        assert!(one.expose().chars().all(|it| "abc".contains(it)));
        assert_ne!(one.expose(), two.expose(), "drawn afresh each time");
    }

    #[test]
    fn every_character_is_drawn() {
        let generate = Generator {
            field: "f".to_owned(),
            length: 4096,
            characters: "0123456789abcdef".to_owned(),
        };
        let value = draw(&generate).expect("value");
        for it in generate.characters.chars() {
            let n = value.expose().chars().filter(|c| *c == it).count();
            // 256 expected of each; a biased or truncated draw falls far outside.
            assert!((150..400).contains(&n), "{it}: {n}");
        }
    }
}
