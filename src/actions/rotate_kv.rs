//! `rotate_kv`: rotate a secret whose value keywarden makes (a Vault KV v2 secret) — draw a new
//! value as the policy's `enforce.generate` says and write it as the secret's next version,
//! check-and-set on the version the rotation began from, keeping the secret's other fields.
//!
//! check → write → done.
//! - `check`: the secret as its store shows it now (its current version); a policy's condition
//!   re-checked on it.
//! - `write`: re-reads the secret. A version past the one `check` saw means the rotation happened
//!   (this action's write before a crash, or someone else's): done, nothing written twice.
//!   Otherwise the value is drawn and written with `cas` = that version, so a write that raced
//!   another fails rather than overwriting it. The value is only ever in memory (and its one-way
//!   hashes recorded, for leak reports that carry only a hash).

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
    },
    /// Write the new value as version `version + 1`.
    Write {
        generate: Generator,
        version: u64,
    },
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
    async fn check(cx: &StepCx<'_>, generate: Option<Generator>) -> Result<Next<Self>, StepError> {
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
        let live = HeldKey {
            id: cx.key().to_owned(),
            active: true,
            created_at: None,
        };
        if let Some(reason) =
            guard::condition_lapsed_with(cx, &live, std::slice::from_ref(&live), LastUse::Unknown)
                .await?
        {
            return Ok(Next::Skipped(reason));
        }
        Ok(Next::Step(
            Self::Write {
                generate,
                version: held.version,
            },
            Some(format!("{at} is at version {}", held.version)),
        ))
    }

    async fn write(
        cx: &StepCx<'_>,
        generate: Generator,
        version: u64,
    ) -> Result<Next<Self>, StepError> {
        let (store, at) = target(cx).await?;
        let Some(held) = store.read(&at).await? else {
            return Ok(Next::Failed(format!(
                "{at} lost its current version during the rotation"
            )));
        };
        if held.version > version {
            return Ok(Next::Done(format!(
                "{at} is at version {} (past {version}): rotated; nothing written again",
                held.version
            )));
        }
        let mut fields = held.fields;
        let value = draw(&generate)?;
        let hashes = [
            ("sha1", crate::leaks::sha1_hex(value.expose().as_bytes())),
            ("hmsl", crate::leaks::hmsl_hex(value.expose().as_bytes())),
        ];
        fields.insert(generate.field.clone(), value);
        cx.fence().await?;
        let written = store.write(&at, &fields, Some(version)).await?;
        drop(fields);
        crash_point("kv_written");
        cx.engine
            .store
            .record_secret_hashes(&cx.record.source, cx.key(), &hashes, cx.now())
            .await?;
        Ok(Next::Done(format!(
            "wrote version {written} of {at}: `{}` generated ({} characters, {:.0} bits), its \
             other fields kept",
            generate.field,
            generate.length,
            generate.bits()
        )))
    }
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
            Self::Check { generate } => Self::check(cx, generate).await,
            Self::Write { generate, version } => Self::write(cx, generate, version).await,
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
