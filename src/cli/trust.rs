//! `keywarden trust`: signers, their holders and trust; revoking and reinstating by hand.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::{ConfigArg, Failure, Format, open_store};
use crate::config::{self, Config};
use crate::signers::Signer;
use crate::signers::export;
use crate::store::{SignerTrust, SqliteStore, TrustChange};
use crate::trust::{Change, DistrustPeriod, DistrustReason};

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// List every signer: its key id, holders and their credentials' state, distrust periods,
    /// and whether a signature made now (or --at) is trusted.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Judge signatures made at this time (RFC 3339); default now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Show one signer (by key id, or a unique prefix of at least 8 hex digits).
    Show {
        #[command(flatten)]
        config: ConfigArg,
        key_id: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Judge a signature made at this time (RFC 3339); default now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Distrust a signer from a time (until a time, or for good); recorded in the audit log.
    /// Distrust only widens: a period already covered changes nothing.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        key_id: String,
        /// From when signatures prove nothing (RFC 3339, or `now`).
        #[arg(long)]
        from: String,
        /// Until when (RFC 3339); without it, for good.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        who: Who,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Trust a signer again from a time (default now): every distrust period in force then ends
    /// there, keeping who and why; earlier periods stay. Recorded in the audit log.
    Reinstate {
        #[command(flatten)]
        config: ConfigArg,
        key_id: String,
        /// From when (RFC 3339, or `now`).
        #[arg(long, default_value = "now")]
        at: String,
        #[command(flatten)]
        who: Who,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Export the signers for an admission controller or verifier: for `cosign`,
    /// `policy-controller`, `kyverno` and `notation`, which cannot express time, the signers
    /// trusted now (or --at); for `keywarden`, every signer with its trust window and distrust
    /// periods, signed with keywarden's own key.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Where to write. A directory for `cosign` (`<key id>.pub` each) and `notation`
        /// (`trustpolicy.oci.json`, `truststore/`), replaced whole by each export; a file for
        /// `policy-controller` and `kyverno`; for `keywarden`, the bundle, with PATH.sig (its
        /// signature) and PATH.pub (keywarden's public key) beside it.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Export the signers trusted at this time (RFC 3339, or `now`); default now. Not for
        /// `keywarden`, which holds every time.
        #[arg(long)]
        at: Option<String>,
    },
}

/// What `trust export` writes (see `signers::export::Format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// PEM public keys, one `<key id>.pub` per signer (cosign verify --key).
    Cosign,
    /// A sigstore policy-controller ClusterImagePolicy (YAML).
    PolicyController,
    /// A Kyverno ClusterPolicy with a verifyImages rule (YAML).
    Kyverno,
    /// A notation trust policy and trust store (certificate signers only).
    Notation,
    /// Every signer with its windows (JSON), signed: PATH, PATH.sig, PATH.pub.
    Keywarden,
}

impl From<ExportFormat> for export::Format {
    fn from(it: ExportFormat) -> Self {
        match it {
            ExportFormat::Cosign => Self::Cosign,
            ExportFormat::PolicyController => Self::PolicyController,
            ExportFormat::Kyverno => Self::Kyverno,
            ExportFormat::Notation => Self::Notation,
            ExportFormat::Keywarden => Self::Keywarden,
        }
    }
}

/// Who decided a change, and why.
#[derive(Debug, Args)]
pub struct Who {
    /// Why (kept as the evidence of the change).
    #[arg(long)]
    reason: String,
    /// Who decided.
    #[arg(long)]
    by: String,
}

impl Who {
    fn checked(&self) -> Result<(&str, &str), Failure> {
        let (reason, by) = (self.reason.trim(), self.by.trim());
        if reason.is_empty() {
            return Err(Failure::Input("--reason: expected why, not nothing".into()));
        }
        if by.is_empty() {
            return Err(Failure::Input(
                "--by: expected who decides, not nothing".into(),
            ));
        }
        Ok((reason, by))
    }
}

pub async fn run(command: TrustCommand) -> Result<ExitCode, Failure> {
    let now = Utc::now();
    match command {
        TrustCommand::List { config, format, at } => {
            let at = parse_time("--at", at.as_deref().unwrap_or("now"), now)?;
            let (_, store, signers) = load(&config).await?;
            store.close().await;
            match format {
                Format::Json => {
                    let views: Vec<_> = signers.iter().map(|it| it.view(at)).collect();
                    let out = serde_json::json!({ "at": at, "signers": views });
                    println!("{}", serde_json::to_string_pretty(&out).context("render")?);
                }
                Format::Table => print!("{}", table(&signers, at)),
            }
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Show {
            config,
            key_id,
            format,
            at,
        } => {
            let at = parse_time("--at", at.as_deref().unwrap_or("now"), now)?;
            let (_, store, signers) = load(&config).await?;
            store.close().await;
            let signer = find(&signers, &key_id)?;
            show(signer, at, format)?;
            Ok(ExitCode::SUCCESS)
        }
        TrustCommand::Revoke {
            config,
            key_id,
            from,
            until,
            who,
            format,
        } => {
            let (reason, by) = who.checked()?;
            let from = parse_time("--from", &from, now)?;
            let until = until
                .as_deref()
                .map(|it| parse_time("--until", it, now))
                .transpose()?;
            if let Some(until) = until.filter(|until| *until <= from) {
                return Err(Failure::Input(format!(
                    "--until {} is not after --from {}: the period would be empty",
                    time(until),
                    time(from)
                )));
            }
            let period = DistrustPeriod {
                from,
                until,
                reason: DistrustReason::Manual,
                evidence: reason.to_owned(),
                by: by.to_owned(),
                reinstated: None,
                until_replaced: None,
            };
            change(&config, &key_id, TrustChange::Distrust(period), now, format).await
        }
        TrustCommand::Reinstate {
            config,
            key_id,
            at,
            who,
            format,
        } => {
            let (reason, by) = who.checked()?;
            let at = parse_time("--at", &at, now)?;
            // Backdating would trust again what was signed between then and now, while it was
            // distrusted: a reinstatement takes effect now or later.
            if at < now {
                return Err(Failure::Input(format!(
                    "--at {}: a reinstatement cannot be backdated (what was signed while the \
                     signer was distrusted stays untrusted); use `now` or a later time",
                    time(at)
                )));
            }
            let change_to = TrustChange::Reinstate {
                at,
                by: by.to_owned(),
                reason: reason.to_owned(),
            };
            change(&config, &key_id, change_to, now, format).await
        }
        TrustCommand::Export {
            config,
            format,
            out,
            at,
        } => super::trust_export::export(&config, format.into(), &out, at.as_deref(), now).await,
    }
}

/// Applies a change to one signer's record; a refused change is bad input (exit 2) and changes
/// nothing.
async fn change(
    config: &ConfigArg,
    key_id: &str,
    change: TrustChange,
    now: DateTime<Utc>,
    format: Format,
) -> Result<ExitCode, Failure> {
    let (loaded, store, signers) = load(config).await?;
    let signer = find(&signers, key_id)?;
    let outcome = store
        .change_trust(&signer.key_id, signer.record.valid_from, &change, now)
        .await?;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            store.close().await;
            return Err(Failure::Input(format!("{}: {err}", signer.key_id)));
        }
    };
    if outcome == Change::Unchanged {
        eprintln!(
            "{}: unchanged (a distrust period with the same reason already covers it)",
            signer.key_id
        );
    }
    let signers = assemble(&loaded, &store).await?;
    store.close().await;
    let signer = find(&signers, &signer.key_id)?;
    show(signer, now, format)?;
    Ok(ExitCode::SUCCESS)
}

/// Config, store and every signer.
pub(super) async fn load(
    config: &ConfigArg,
) -> Result<(Config, SqliteStore, Vec<Signer>), Failure> {
    let loaded = config::load(&config.config)?;
    let store = open_store(&loaded).await?;
    let signers = assemble(&loaded, &store).await?;
    Ok((loaded, store, signers))
}

/// The signers of the ledger and the stored records, with the config's holders. A `signers:`
/// entry whose key cannot be read is a warning, so that it never blocks revoking another signer.
async fn assemble(config: &Config, store: &SqliteStore) -> Result<Vec<Signer>, Failure> {
    let (configured, errors) = crate::signers::load::configured_holders(config);
    for error in errors {
        eprintln!("warning: {error}; its holders are not listed");
    }
    Ok(crate::signers::load::signers(store, &configured).await?)
}

/// The signer with this key id, or the one whose key id starts with it (8 digits at least).
fn find<'a>(signers: &'a [Signer], key_id: &str) -> Result<&'a Signer, Failure> {
    let wanted = key_id.trim().to_ascii_lowercase();
    if let Some(exact) = signers.iter().find(|it| it.key_id == wanted) {
        return Ok(exact);
    }
    if wanted.len() < 8 || !wanted.bytes().all(|it| it.is_ascii_hexdigit()) {
        return Err(Failure::Input(format!(
            "`{key_id}`: expected a key id (64 hex digits, or a unique prefix of at least 8) as \
             `keywarden trust list` shows it"
        )));
    }
    let mut found = signers.iter().filter(|it| it.key_id.starts_with(&wanted));
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(Failure::Input(format!(
            "no signer with key id `{key_id}`; `keywarden trust list` shows them"
        ))),
        (Some(_), Some(_)) => Err(Failure::Input(format!(
            "key id prefix `{key_id}` names several signers; give more digits"
        ))),
    }
}

/// An RFC 3339 time or `now`.
pub(super) fn parse_time(
    flag: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, Failure> {
    if text.trim() == "now" {
        return Ok(now);
    }
    DateTime::parse_from_rfc3339(text.trim())
        .map(|it| it.with_timezone(&Utc))
        .map_err(|err| {
            Failure::Input(format!(
                "{flag} `{text}`: expected an RFC 3339 time (2026-06-01T12:00:00Z) or `now`: {err}"
            ))
        })
}

fn show(signer: &Signer, at: DateTime<Utc>, format: Format) -> Result<(), Failure> {
    let view = signer.view(at);
    match format {
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(&view).context("render")?);
        }
        Format::Table => {
            println!("signer {}", view.key_id);
            println!("  algorithm: {}", view.algorithm.unwrap_or("unknown"));
            println!("  trusted from: {}", time(view.valid_from));
            match &view.untrusted_because {
                None => println!("  a signature made {} is trusted", time(at)),
                Some(why) => println!("  a signature made {} is NOT trusted: {why}", time(at)),
            }
            for it in view.credentials {
                println!(
                    "  credential {} ({}, {}) in {}, of {}",
                    it.name, it.kind, it.status, it.source, it.identity_name
                );
            }
            for it in view.holders {
                let states: Vec<String> = it
                    .credentials
                    .iter()
                    .map(|c| format!("{} {} {}", c.kind, c.external_id, c.status))
                    .collect();
                println!(
                    "  held by {} in {} ({:?}): {}",
                    it.name,
                    it.source,
                    it.via,
                    states.join(", ")
                );
            }
            for it in view.distrust_periods {
                println!("  distrusted {}", period(it));
            }
        }
    }
    Ok(())
}

pub(super) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn period(it: &DistrustPeriod) -> String {
    let until = match (&it.until, &it.until_replaced) {
        (Some(until), _) => time(*until),
        (None, Some(credential)) => format!("{credential} is replaced"),
        (None, None) => "for good".to_owned(),
    };
    let mut text = format!(
        "{} from {} until {until}: {} (by {})",
        it.reason.as_str(),
        time(it.from),
        it.evidence,
        it.by
    );
    if let Some(back) = &it.reinstated {
        text += &format!(
            "; reinstated by {} at {}: {}",
            back.by,
            time(back.at),
            back.reason
        );
    }
    text
}

fn table(signers: &[Signer], at: DateTime<Utc>) -> String {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header([
        "key id",
        "algorithm",
        &format!("trusted at {}", time(at)),
        "credentials",
        "holders",
        "distrust periods",
    ]);
    for signer in signers {
        let credentials: Vec<String> = signer
            .credentials
            .iter()
            .map(|it| format!("{} ({})", it.name, it.status))
            .collect();
        let holders: Vec<String> = signer
            .holders
            .iter()
            .map(|it| format!("{}/{}", it.source, it.name))
            .collect();
        let periods: Vec<String> = signer.record.periods.iter().map(period).collect();
        table.add_row([
            signer.key_id.clone(),
            signer.algorithm.clone().unwrap_or_default(),
            if signer.trusts(at) { "yes" } else { "NO" }.to_owned(),
            credentials.join("\n"),
            holders.join("\n"),
            periods.join("\n"),
        ]);
    }
    format!("{table}\n{} signers\n", signers.len())
}
