//! `keywarden audit`: verify the keyed chain (against a checkpoint), sign a checkpoint of its
//! head, export events as JSON lines.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;

use super::{ConfigArg, Failure, open_store};
use crate::audit::{Checkpoint, Event};
use crate::config;
use crate::store::{AuditLog, SqliteStore};

/// Events per page of `audit export`.
const EXPORT_PAGE: u32 = 2000;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's keyed chain, streamed in constant memory, and report the first
    /// broken link; with --checkpoint, also that nothing was cut off or rewritten after it.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// A checkpoint printed by `keywarden audit checkpoint` earlier.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Verify the log, then print a signed checkpoint of its head (JSON) to keep elsewhere.
    Checkpoint {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Write the events after sequence number SEQ as JSON lines, one event per line, in order.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// Only events with a higher sequence number (0: all); pass the last one you kept.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
        since: i64,
    },
}

pub async fn run(command: AuditCommand) -> Result<ExitCode, Failure> {
    match command {
        AuditCommand::Verify { config, checkpoint } => {
            let checkpoint = checkpoint.as_deref().map(read_checkpoint).transpose()?;
            let store = store(&config.config).await?;
            let code = match store.verify_audit_with(checkpoint.as_ref()).await? {
                Ok(verified) => {
                    let mut line = format!(
                        "audit log intact: {} events, head {} {}",
                        verified.events, verified.head.seq, verified.head.hash
                    );
                    if verified.legacy > 0 {
                        line += &format!(
                            "; the first {} were written before the chain was keyed (plain \
                             SHA-256, closed by the keyed marker)",
                            verified.legacy
                        );
                    }
                    if let Some(seq) = verified.checkpoint {
                        line += &format!("; matches the checkpoint at event {seq}");
                    }
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(failure) => {
                    println!("{failure}");
                    ExitCode::from(1)
                }
            };
            store.close().await;
            Ok(code)
        }
        AuditCommand::Checkpoint { config } => {
            let store = store(&config.config).await?;
            let code = match store.verify_audit_with(None).await? {
                Ok(verified) => {
                    let checkpoint = store.audit_checkpoint(&verified.head, Utc::now());
                    println!(
                        "{}",
                        serde_json::to_string(&checkpoint)
                            .context("cannot write the checkpoint")?
                    );
                    ExitCode::SUCCESS
                }
                Err(failure) => {
                    println!("{failure}; no checkpoint was made");
                    ExitCode::from(1)
                }
            };
            store.close().await;
            Ok(code)
        }
        AuditCommand::Export { config, since } => {
            let store = store(&config.config).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut after = since;
            loop {
                let page = store.events_page(after, EXPORT_PAGE).await?;
                let Some(last) = page.last() else {
                    break;
                };
                after = last.seq;
                for event in &page {
                    serde_json::to_writer(&mut out, &export_line(event))
                        .context("cannot write the export")?;
                    out.write_all(b"\n").context("cannot write the export")?;
                }
            }
            out.flush().context("cannot write the export")?;
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn store(config_path: &Path) -> Result<SqliteStore, Failure> {
    let config = config::load(config_path)?;
    open_store(&config).await
}

/// A checkpoint file; a malformed one is bad input, named by file:line:column.
fn read_checkpoint(path: &Path) -> Result<Checkpoint, Failure> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        Failure::Input(format!(
            "{}: cannot read the checkpoint: {err}",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|err| {
        Failure::Input(format!(
            "{}:{}:{}: not a keywarden checkpoint: {err}",
            path.display(),
            err.line(),
            err.column()
        ))
    })
}

/// One event as a SIEM line: its fields, `data` as the JSON object it holds.
fn export_line(event: &Event) -> serde_json::Value {
    let data = serde_json::from_str::<serde_json::Value>(&event.data)
        .unwrap_or_else(|_| serde_json::Value::String(event.data.clone()));
    serde_json::json!({
        "seq": event.seq,
        "at": event.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "kind": event.kind,
        "subject": event.subject,
        "data": data,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    })
}
