//! `keywarden leak`: ingest a leak report (matched, recorded once, answered), list what was
//! ingested.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;
use zeroize::Zeroizing;

use super::{ConfigArg, Failure, Format, actions::load};
use crate::intake::{self, IngestError};
use crate::leaks::LeakFormat;
use crate::store::Leaks;

#[derive(Debug, Subcommand)]
pub enum LeakCommand {
    /// Read a leak report (GitHub secret scanning alerts or webhook, GitGuardian incident webhook,
    /// TruffleHog JSON lines, gitleaks JSON, detect-secrets baseline), match it against the
    /// ledger without keeping any secret, open a critical finding for what it exposed and contain
    /// each exposed key whose source can act. Ingesting the same report again changes nothing.
    Ingest {
        #[command(flatten)]
        config: ConfigArg,
        /// The report file.
        file: PathBuf,
        /// The report's format; recognised from its content when not given.
        #[arg(long, value_enum)]
        format: Option<LeakFormat>,
        /// Open findings and distrust signers only; quarantine nothing.
        #[arg(long)]
        no_contain: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// List the leaks ingested so far, oldest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

pub async fn run(command: LeakCommand) -> Result<ExitCode, Failure> {
    match command {
        LeakCommand::Ingest {
            config,
            file,
            format,
            no_contain,
            output,
        } => {
            // The report may hold plaintext secrets: it lives only in a zeroizing buffer.
            let bytes =
                Zeroizing::new(std::fs::read(&file).map_err(|err| {
                    Failure::Input(format!("cannot read {}: {err}", file.display()))
                })?);
            let loaded = load(&config.config).await?;
            let settings = intake::Settings {
                look_back: loaded.config.leak_look_back,
                contain: !no_contain,
            };
            let clock = Utc::now;
            let engine = loaded.engine(&clock);
            let result = intake::ingest(engine, &settings, &bytes, format, Utc::now()).await;
            loaded.store.close().await;
            let ingested = match result {
                Ok(it) => it,
                Err(IngestError::Report(err @ crate::leaks::LeakError::Malformed { .. })) => {
                    return Err(Failure::Input(format!("{}:{err}", file.display())));
                }
                Err(IngestError::Report(err)) => {
                    return Err(Failure::Input(format!("{}: {err}", file.display())));
                }
                Err(IngestError::Store(err)) => return Err(err.into()),
            };
            match output {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&ingested).context("cannot render")?
                ),
                Format::Table => {
                    let new = ingested.leaks.iter().filter(|it| it.answered).count();
                    println!(
                        "{} report: {} leaks, {new} answered now, {} answered before",
                        ingested.format.as_str(),
                        ingested.leaks.len(),
                        ingested.leaks.len() - new
                    );
                    for it in ingested.leaks.iter().filter(|it| it.answered) {
                        let matched: Vec<String> = it
                            .matched
                            .iter()
                            .map(|m| format!("{}/{}", m.source, m.credential_external_id))
                            .collect();
                        println!(
                            "  {} {}: {}{}",
                            it.leak.detector,
                            it.leak.location.as_deref().unwrap_or("(no location)"),
                            if matched.is_empty() {
                                "matches no credential".to_owned()
                            } else {
                                format!("exposes {}", matched.join(", "))
                            },
                            if it.contained.is_empty() {
                                String::new()
                            } else {
                                format!("; containment actions {:?}", it.contained)
                            }
                        );
                        for key_id in &it.distrusted {
                            println!("    signer {key_id} distrusted for good");
                        }
                        for why in &it.not_contained {
                            println!("    not contained: {why}");
                        }
                        if let Some(why) = &it.leak.dismissed {
                            println!("    dismissed: {why}");
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LeakCommand::List { config, format } => {
            let loaded = crate::config::load(&config.config)?;
            let store = super::open_store(&loaded).await?;
            let leaks = store.leaks().await?;
            store.close().await;
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&leaks).context("cannot render")?
                ),
                Format::Table => {
                    for it in &leaks {
                        println!(
                            "{} {} {} {} matched {}",
                            it.ingested_at.to_rfc3339(),
                            it.leak.id,
                            it.leak.detector,
                            it.leak.location.as_deref().unwrap_or_default(),
                            it.matched.len()
                        );
                    }
                    println!("{} leaks", leaks.len());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
