//! The command line: parses arguments, runs one command, and maps the outcome to an exit status.
//!
//! Exit status: 0 success; 1 a finding at or above `--fail-on` is open (scan) or the audit chain is
//! broken (audit verify); 2 usage, config or policy errors (nothing was changed); 3 any other
//! failure (the store could not be opened or written).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use keywarden_connector::{NoProgress, Progress};

use crate::config::{self, Config};
use crate::diagnostic::Diagnostics;
use crate::policy::{self, PolicySet, Severity};
use crate::report;
use crate::store::{Findings, SqliteStore, Suppression};

mod actions;
mod audit;
mod enforce;
mod leak;
mod trust;
mod trust_export;

/// How many credentials the scan table lists without `--all`, worst first.
const TABLE_ROWS: usize = 100;

/// keywarden: the ledger of your pipelines' machine identities and signing keys.
#[derive(Debug, Parser)]
#[command(name = "keywarden", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log level filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, global = true, env = "KEYWARDEN_LOG", default_value = "warn")]
    pub log_level: String,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "KEYWARDEN_CONFIG",
        default_value = "keywarden.yaml"
    )]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starting configuration and the shipped policy pack.
    Init {
        /// Where to write the configuration; its policies go in `policies/` beside it.
        #[arg(long, default_value = "keywarden.yaml")]
        path: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Inventory every source, update the ledger, evaluate the policies and report.
    Scan {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Exit with status 1 when an unresolved, unsuppressed finding of this severity or worse
        /// exists (info, low, medium, high, critical).
        #[arg(long, value_parser = parse_severity)]
        fail_on: Option<Severity>,
        /// Never draw a progress bar (none is drawn when stderr is not a terminal anyway).
        #[arg(long)]
        no_progress: bool,
        /// List every credential in the table, not only the worst 100.
        #[arg(long)]
        all: bool,
        /// Evaluate only: start no action of an enforcing policy.
        #[arg(long)]
        no_enforce: bool,
    },
    /// Scan, then enforce: start the actions of enforcing policies on what this run read without
    /// error, within the caps, and say for every finding what was done and why.
    Enforce {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Never draw a progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Work with policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Work with findings.
    Findings {
        #[command(subcommand)]
        command: FindingsCommand,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Rotate one access key: create, deliver, verify, overlap, deactivate, delete after a grace
    /// period. A dry run unless --enforce.
    Rotate(actions::ActOn),
    /// Deactivate one access key. A dry run unless --enforce.
    Disable(actions::ActOn),
    /// Delete one access key (a Vault token or secret-id: revoke it). A dry run unless --enforce.
    Delete(actions::ActOn),
    /// Contain a leaked key: deactivate it and deny every session of its user issued before now.
    /// A dry run unless --enforce.
    Quarantine(actions::ActOn),
    /// Contain a leaked key with the containment playbook: quarantine it (pre-empting a rotation
    /// in flight), then open a critical finding. A dry run unless --enforce.
    Contain(actions::ContainArgs),
    /// Work with actions: list, show, resume, approve, reject, cancel, retry.
    Actions {
        #[command(subcommand)]
        command: actions::ActionsCommand,
    },
    /// Work with signers and their trust: list, show, revoke, reinstate, export.
    Trust {
        #[command(subcommand)]
        command: trust::TrustCommand,
    },
    /// Work with leak reports: ingest, list.
    Leak {
        #[command(subcommand)]
        command: leak::LeakCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files and report every error with file:line:column.
    Check {
        /// Policy files or directories; default: the `policies` of the config file.
        paths: Vec<PathBuf>,
        /// The configuration file whose policies to check when no path is given.
        #[arg(
            long,
            short,
            env = "KEYWARDEN_CONFIG",
            default_value = "keywarden.yaml"
        )]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// List findings (unresolved ones unless --all).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Include resolved findings.
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Suppress a finding until a time, with a reason; recorded in the audit log.
    Suppress {
        #[command(flatten)]
        config: ConfigArg,
        /// The finding id.
        id: i64,
        /// Until when: an RFC 3339 time or a duration from now (30d, 12h).
        #[arg(long)]
        until: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Who decided.
        #[arg(long)]
        by: String,
    },
    /// Acknowledge an open finding.
    Ack {
        #[command(flatten)]
        config: ConfigArg,
        id: i64,
        #[arg(long)]
        by: String,
    },
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    text.parse::<Severity>().map_err(|err| err.to_string())
}

/// A failure the CLI reports with a given exit status.
enum Failure {
    /// Bad input; nothing was changed (exit 2).
    Input(String),
    /// Anything else (exit 3).
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Self::Internal(err)
    }
}

impl From<Diagnostics> for Failure {
    fn from(err: Diagnostics) -> Self {
        Self::Input(err.to_string())
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(err: crate::store::StoreError) -> Self {
        Self::Internal(err.into())
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    let res = match cli.command {
        Command::Init { path, force } => init(&path, force),
        Command::Scan {
            config,
            format,
            fail_on,
            no_progress,
            all,
            no_enforce,
        } => {
            let options = ScanOptions {
                format,
                fail_on,
                no_progress,
                all,
                enforce: !no_enforce,
            };
            scan(&config.config, options).await
        }
        Command::Enforce {
            config,
            format,
            no_progress,
        } => enforce::run(&config.config, format, no_progress).await,
        Command::Contain(args) => actions::contain(args).await,
        Command::Policy {
            command: PolicyCommand::Check { paths, config },
        } => policy_check(paths, &config),
        Command::Findings { command } => findings(command).await,
        Command::Audit { command } => audit::run(command).await,
        Command::Rotate(args) => actions::act(crate::actions::ActionKind::Rotate, args).await,
        Command::Disable(args) => actions::act(crate::actions::ActionKind::Disable, args).await,
        Command::Delete(args) => actions::act(crate::actions::ActionKind::Delete, args).await,
        Command::Quarantine(args) => {
            actions::act(crate::actions::ActionKind::Quarantine, args).await
        }
        Command::Actions { command } => actions::run(command).await,
        Command::Trust { command } => trust::run(command).await,
        Command::Leak { command } => leak::run(command).await,
    };
    match res {
        Ok(code) => code,
        Err(Failure::Input(message)) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
        Err(Failure::Internal(err)) => {
            eprintln!("error: {err:#}");
            ExitCode::from(3)
        }
    }
}

/// Loads config and policies, both validated before anything is opened or written.
fn load_all(path: &Path) -> Result<(Config, PolicySet), Failure> {
    let config = config::load(path)?;
    let policies = policy::load(&config.policy_paths)?;
    Ok((config, policies))
}

async fn open_store(config: &Config) -> Result<SqliteStore, Failure> {
    SqliteStore::open_with(&config.store_path, config.store_options)
        .await
        .with_context(|| format!("cannot open the store {}", config.store_path.display()))
        .map_err(Failure::Internal)
}

/// An indicatif bar behind the connector's [`Progress`].
#[derive(Debug)]
struct Bar(ProgressBar);

impl Progress for Bar {
    fn add_total(&self, n: u64) {
        self.0.inc_length(n);
    }

    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

/// How `keywarden scan` runs and reports.
struct ScanOptions {
    format: Format,
    fail_on: Option<Severity>,
    no_progress: bool,
    all: bool,
    enforce: bool,
}

/// What one scan (and its enforcement) leaves for the command to report.
struct Scanned {
    store: SqliteStore,
    report: crate::scan::ScanReport,
}

/// Loads everything, scans, and (unless told not to) enforces, with the command's clock.
async fn scan_and_enforce(
    path: &Path,
    no_progress: bool,
    enforce: bool,
) -> Result<Scanned, Failure> {
    let (config, policies) = load_all(path)?;
    let connectors = config.build()?;
    let store = open_store(&config).await?;

    let bar = (!no_progress && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} scanning {pos}/{len} [{elapsed}] {wide_bar}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let progress: Arc<dyn Progress> = match &bar {
        Some(bar) => Arc::new(Bar(bar.clone())),
        None => Arc::new(NoProgress),
    };
    let mut report = crate::scan::run(&store, &connectors, &policies, Utc::now(), progress)
        .await
        .context("scan failed")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let holders = actions::holders(&config);
    let clock = Utc::now;
    let engine = crate::actions::Engine {
        store: &store,
        connectors: &connectors,
        policies: &policies,
        holders: &holders,
        clock: &clock,
    };
    // Leaks the provider confirmed (AWS's quarantine policy on a user) are answered first, as a
    // report of them would be (findings, distrust, containment), when enforcing; without, they
    // are only reported, and the next enforcing scan answers them.
    let confirmed: Vec<crate::leaks::ConfirmedLeak> = report
        .sources
        .iter()
        .flat_map(|it| it.confirmed_leaks.iter().cloned())
        .collect();
    if enforce && !confirmed.is_empty() {
        let settings = crate::intake::Settings {
            look_back: config.leak_look_back,
            contain: true,
        };
        report.leaks = crate::intake::ingest_confirmed(engine, &settings, &confirmed, Utc::now())
            .await
            .context("cannot answer the leaks the provider confirmed")?
            .leaks;
    }
    if enforce {
        let scope = report.enforcement_scope();
        let enforcement =
            crate::actions::enforce::run(engine, &config.enforcement, &scope, &report.findings)
                .await
                .context("enforcement failed")?;
        report.enforcement = Some(enforcement);
    }
    signer_trust(&store, &holders, &mut report)
        .await
        .context("cannot read the signers' trust")?;
    Ok(Scanned { store, report })
}

/// The signers' trust as it stands after the scan and enforcement: a finding on each credential
/// of a signer distrusted now (so `--fail-on` counts it), resolved once it is trusted again; the
/// report's findings read again to include them.
async fn signer_trust(
    store: &SqliteStore,
    holders: &crate::actions::Holders,
    report: &mut crate::scan::ScanReport,
) -> Result<(), crate::store::StoreError> {
    let signers = crate::signers::load::signers(store, holders).await?;
    crate::signers::load::reconcile_findings(
        store,
        &signers,
        &report.findings,
        &report.scope,
        report.started_at,
    )
    .await?;
    // The findings as they were are dropped before they are read again (tens of thousands in a
    // large scan: both at once raised its peak memory).
    report.findings = Vec::new();
    report.findings = store
        .findings(true)
        .await?
        .into_iter()
        .filter(|it| report.scope.contains(&it.source))
        .collect();
    report.signers = signers;
    Ok(())
}

async fn scan(path: &Path, options: ScanOptions) -> Result<ExitCode, Failure> {
    let ScanOptions {
        format,
        fail_on,
        no_progress,
        all,
        enforce,
    } = options;
    let Scanned { store, report } = scan_and_enforce(path, no_progress, enforce).await?;
    match format {
        Format::Table => print!(
            "{}",
            report::table(&store, &report, (!all).then_some(TABLE_ROWS))
                .await
                .context("cannot write the report")?
        ),
        Format::Json => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            report::write_json(&store, &report, &mut out)
                .await
                .context("cannot write the report")?;
            writeln!(out).context("cannot write the report")?;
            out.flush().context("cannot write the report")?;
        }
    }
    store.close().await;
    let gate = fail_on.is_some_and(|threshold| {
        report::worst_active(&report.findings).is_some_and(|worst| worst >= threshold)
    });
    Ok(if gate {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn policy_check(paths: Vec<PathBuf>, config_path: &Path) -> Result<ExitCode, Failure> {
    let paths = if paths.is_empty() {
        config::load(config_path)?.policy_paths
    } else {
        paths
    };
    let set = policy::load(&paths)?;
    println!("{} policies OK", set.policies.len());
    for policy in &set.policies {
        println!(
            "  {:<40} {:<8} {:<8} {}",
            policy.id,
            policy.severity.as_str(),
            policy.mode.as_str(),
            policy.origin.file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--until`: an RFC 3339 time or a duration from `now`, in the future and at most
/// [`MAX_DURATION`](keywarden_connector::duration::MAX_DURATION) away. Never panics on overflow.
fn parse_until(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Failure> {
    use keywarden_connector::duration::{self, DurationError, MAX_DURATION, MAX_DURATION_TEXT};
    let too_far = || {
        Failure::Input(format!(
            "--until `{text}`: more than {MAX_DURATION_TEXT} from now, the longest suppression \
             accepted"
        ))
    };
    let until = match DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => {
            let length = duration::parse_duration(text).map_err(|err| match err {
                DurationError::TooLong => too_far(),
                DurationError::Syntax(err) => Failure::Input(format!(
                    "--until `{text}`: expected an RFC 3339 time (2027-01-31T00:00:00Z) or a \
                     duration (30d): {err}"
                )),
            })?;
            duration::checked_add(now, length).ok_or_else(too_far)?
        }
    };
    if until <= now {
        return Err(Failure::Input(format!(
            "--until `{text}`: must be in the future"
        )));
    }
    if duration::checked_add(now, MAX_DURATION).is_none_or(|latest| until > latest) {
        return Err(too_far());
    }
    Ok(until)
}

async fn findings(command: FindingsCommand) -> Result<ExitCode, Failure> {
    let now = Utc::now();
    match command {
        FindingsCommand::List {
            config,
            all,
            format,
        } => {
            let config = config::load(&config.config)?;
            let store = open_store(&config).await?;
            let findings = store.findings(!all).await?;
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&findings).context("cannot render findings")?
                ),
                Format::Table => {
                    let mut table = table(&[
                        "ID",
                        "SEVERITY",
                        "STATUS",
                        "POLICY",
                        "SOURCE",
                        "CREDENTIAL",
                        "REASON",
                    ]);
                    for it in &findings {
                        table.add_row([
                            it.id.to_string(),
                            it.severity.clone(),
                            it.status.to_string(),
                            it.policy_id.clone(),
                            it.source.clone(),
                            it.credential_external_id.clone(),
                            it.reason.clone(),
                        ]);
                    }
                    println!("{table}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FindingsCommand::Suppress {
            config,
            id,
            until,
            reason,
            by,
        } => {
            let until = parse_until(&until, now)?;
            if reason.trim().is_empty() || by.trim().is_empty() {
                return Err(Failure::Input(
                    "--reason and --by: must not be empty".to_owned(),
                ));
            }
            let config = config::load(&config.config)?;
            let store = open_store(&config).await?;
            let suppression = Suppression { until, by, reason };
            let finding = store
                .suppress_finding(id, &suppression, now)
                .await
                .map_err(store_input_error)?;
            println!(
                "finding {} suppressed until {}",
                finding.id,
                until.to_rfc3339()
            );
            Ok(ExitCode::SUCCESS)
        }
        FindingsCommand::Ack { config, id, by } => {
            let config = config::load(&config.config)?;
            let store = open_store(&config).await?;
            let finding = store
                .acknowledge_finding(id, &by, now)
                .await
                .map_err(store_input_error)?;
            println!("finding {} acknowledged", finding.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A table in the style every listing of the CLI uses.
fn table(header: &[&str]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(header);
    table
}

/// Not-found and conflict errors are the caller's mistake (exit 2), the rest are internal.
fn store_input_error(err: crate::store::StoreError) -> Failure {
    match err {
        crate::store::StoreError::NotFound(_) | crate::store::StoreError::Conflict(_) => {
            Failure::Input(err.to_string())
        }
        other => Failure::Internal(other.into()),
    }
}

/// The shipped policy pack, written by `keywarden init`.
const POLICY_PACK: &[(&str, &str)] = &[
    (
        "signing-keys.yaml",
        include_str!("../policies/signing-keys.yaml"),
    ),
    (
        "cis-aws-iam.yaml",
        include_str!("../policies/cis-aws-iam.yaml"),
    ),
    ("ownership.yaml", include_str!("../policies/ownership.yaml")),
];

fn init(path: &Path, force: bool) -> Result<ExitCode, Failure> {
    let policies_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join("policies");
    let mut files = vec![(path.to_path_buf(), config::STARTER)];
    for (name, text) in POLICY_PACK {
        files.push((policies_dir.join(name), text));
    }
    if let Some((existing, _)) = files.iter().find(|(file, _)| !force && file.exists()) {
        return Err(Failure::Input(format!(
            "{} exists; use --force to overwrite",
            existing.display()
        )));
    }
    std::fs::create_dir_all(&policies_dir)
        .with_context(|| format!("cannot create {}", policies_dir.display()))?;
    for (file, text) in &files {
        std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))?;
        println!("wrote {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn until(text: &str) -> Result<DateTime<Utc>, String> {
        let now = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .map(|it| it.with_timezone(&Utc))
            .unwrap_or_default();
        parse_until(text, now).map_err(|err| match err {
            Failure::Input(message) => message,
            Failure::Internal(err) => panic!("not an input error: {err}"),
        })
    }

    #[test]
    fn until_accepts_times_and_durations_within_a_hundred_years() {
        assert_eq!(
            until("30d").map(|it| it.to_rfc3339()),
            Ok("2026-07-01T00:00:00+00:00".to_owned())
        );
        assert_eq!(
            until("2027-01-31T00:00:00Z").map(|it| it.to_rfc3339()),
            Ok("2027-01-31T00:00:00+00:00".to_owned())
        );
        assert!(until("100y").is_ok());
    }

    #[test]
    fn until_refuses_what_overflows_or_is_too_far_naming_the_flag() {
        for text in [
            "300000y",
            "101y",
            "2200-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let err = until(text).err().unwrap_or_default();
            assert!(
                err.starts_with(&format!("--until `{text}`: more than 100 years from now")),
                "{text}: {err}"
            );
        }
        let err = until("99999999999999999999d").err().unwrap_or_default();
        assert!(
            err.starts_with("--until `99999999999999999999d`: expected"),
            "{err}"
        );
        for text in ["2020-01-01T00:00:00Z", "0s"] {
            let err = until(text).err().unwrap_or_default();
            assert_eq!(err, format!("--until `{text}`: must be in the future"));
        }
    }
}
