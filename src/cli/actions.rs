//! `keywarden rotate|disable|delete|quarantine|contain` and
//! `keywarden actions list|show|resume|approve|reject|cancel|retry`.

use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::{Args, Subcommand};

use super::{ConfigArg, Failure, Format, load_all, open_store, store_input_error, table};
use crate::actions::{self, ActionError, ActionKind, Engine, Request};
use crate::config;
use crate::policy::PolicySet;
use crate::store::{ActionRecord, ActionStatus, Actions, SqliteStore};

/// One credential to act on.
#[derive(Debug, Args)]
pub struct ActOn {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The credential's id (an access key id such as AKIA...).
    pub credential: String,
    /// The ledger source holding it, when the id is in several.
    #[arg(long)]
    pub source: Option<String>,
    /// Do it. Without this flag keywarden only says what it would do.
    #[arg(long)]
    pub enforce: bool,
    /// `delete`: how long an active key stays deactivated before it is deleted.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    pub hold: std::time::Duration,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `keywarden contain`.
#[derive(Debug, Args)]
pub struct ContainArgs {
    #[command(flatten)]
    pub on: ActOn,
    /// Why (the critical finding carries it).
    #[arg(long)]
    pub reason: String,
}

/// One action and who asks.
#[derive(Debug, Args)]
pub struct Decide {
    #[command(flatten)]
    pub config: ConfigArg,
    pub id: i64,
    /// Who decides (a name or e-mail; kept in the audit log).
    #[arg(long)]
    pub by: String,
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum ActionsCommand {
    /// List actions, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only the unfinished ones (running or waiting).
        #[arg(long)]
        open: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one action with every step it took.
    Show {
        #[command(flatten)]
        config: ConfigArg,
        id: i64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Continue every unfinished action that is due (interrupted ones, and waiting ones whose
    /// overlap, grace or hold period is over).
    Resume {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Approve an action awaiting approval, and run it.
    Approve(Decide),
    /// Reject an action awaiting approval: it ends, having changed nothing.
    Reject(Decide),
    /// Stop an open action at a safe point (a rotation deletes an undelivered new key and keeps a
    /// delivered one, and says which).
    Cancel {
        #[command(flatten)]
        config: ConfigArg,
        id: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        by: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Run a failed or refused action again from where it stopped.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        id: i64,
        /// Who asks (kept in the audit log).
        #[arg(long, default_value = "cli")]
        by: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

fn action_failure(err: ActionError) -> Failure {
    match err {
        ActionError::Store(err) => store_input_error(err),
        other => Failure::Input(other.to_string()),
    }
}

/// The exit status of an action as it ended up: 0 done, waiting for its time, awaiting approval,
/// skipped, cancelled or rejected; 1 refused, failed, or stopped by a passing failure
/// (`actions resume` continues it).
fn status_code(record: &ActionRecord) -> ExitCode {
    match record.status {
        ActionStatus::Done
        | ActionStatus::Waiting
        | ActionStatus::AwaitingApproval
        | ActionStatus::Skipped
        | ActionStatus::Cancelled
        | ActionStatus::Rejected => ExitCode::SUCCESS,
        ActionStatus::Running | ActionStatus::Refused | ActionStatus::Failed => ExitCode::from(1),
    }
}

/// What every command that drives actions loads: config, policies (the live re-checks of policy
/// actions need them), connectors and the store.
pub(super) struct Loaded {
    pub(super) config: crate::config::Config,
    pub(super) store: SqliteStore,
    pub(super) connectors: Vec<std::sync::Arc<dyn keywarden_connector::Connector>>,
    pub(super) policies: PolicySet,
    /// The config's `signers:` holders whose keys could be read.
    pub(super) holders: Vec<(String, Vec<crate::config::signers::HolderSelector>)>,
}

pub(super) async fn load(config: &std::path::Path) -> Result<Loaded, Failure> {
    let (config, policies) = load_all(config)?;
    let connectors = config.build()?;
    let store = open_store(&config).await?;
    let holders = holders(&config);
    Ok(Loaded {
        config,
        store,
        connectors,
        policies,
        holders,
    })
}

/// The config's holders; each `signers:` entry whose key cannot be read is a loud warning (no
/// reason to stop a scan or a leak's answer), and its holders distrust nothing.
pub(super) fn holders(
    config: &crate::config::Config,
) -> Vec<(String, Vec<crate::config::signers::HolderSelector>)> {
    let (holders, errors) = crate::signers::load::configured_holders(config);
    for error in errors {
        tracing::error!(%error, "A signers: entry cannot be read; its holders are not distrusted.");
        eprintln!("warning: {error}; the signers it names are not distrusted for its holders");
    }
    holders
}

impl Loaded {
    pub(super) fn engine<'a>(&'a self, clock: actions::Clock<'a>) -> Engine<'a> {
        Engine {
            store: &self.store,
            connectors: &self.connectors,
            policies: &self.policies,
            holders: &self.holders,
            clock,
        }
    }
}

/// Runs (or, without `--enforce`, plans) one action.
pub async fn act(kind: ActionKind, args: ActOn) -> Result<ExitCode, Failure> {
    act_with(kind, args, None).await
}

/// `keywarden contain`: the containment playbook.
pub async fn contain(args: ContainArgs) -> Result<ExitCode, Failure> {
    act_with(ActionKind::Contain, args.on, Some(args.reason)).await
}

async fn act_with(
    kind: ActionKind,
    args: ActOn,
    reason: Option<String>,
) -> Result<ExitCode, Failure> {
    let loaded = load(&args.config.config).await?;
    let target = actions::target(&loaded.store, &args.credential, args.source.as_deref())
        .await
        .map_err(action_failure)?;
    let kind = actions::resolve_kind(kind, target.credential.kind);
    let key_actions = actions::key_actions(
        &loaded.connectors,
        &target.source,
        kind,
        target.credential.kind,
    )
    .map_err(action_failure)?;
    if !args.enforce {
        let plan = match &key_actions {
            Some(key_actions) => actions::plan(key_actions.as_ref(), kind, &target)
                .await
                .with_context(|| format!("cannot plan the {kind} of {}", args.credential))?,
            None => actions::plan_from_ledger(&loaded.store, kind, &target).await?,
        };
        match args.format {
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&plan).context("cannot render the plan")?
            ),
            Format::Table => {
                println!(
                    "Dry run: {kind} {} ({} in {}). Nothing was changed.",
                    plan.credential, plan.identity, plan.source
                );
                for (n, step) in plan.steps.iter().enumerate() {
                    println!("  {}. {step}", n + 1);
                }
                match &plan.refusal {
                    Some(reason) => println!("Would be refused: {reason}"),
                    None => println!("Run again with --enforce to do it."),
                }
            }
        }
        return Ok(if plan.refusal.is_some() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let clock = Utc::now;
    let mut request = Request::new(kind, &target, "cli");
    request.reason = reason;
    request.delete_hold = chrono::TimeDelta::from_std(args.hold).map_err(|_| {
        Failure::Input(format!(
            "--hold {}: too long",
            humantime::format_duration(args.hold)
        ))
    })?;
    let record = actions::start(loaded.engine(&clock), request)
        .await
        .map_err(action_failure)?;
    print_records(std::slice::from_ref(&record), args.format)?;
    Ok(status_code(&record))
}

pub async fn run(command: ActionsCommand) -> Result<ExitCode, Failure> {
    match command {
        ActionsCommand::List {
            config,
            open,
            format,
        } => {
            let config = config::load(&config.config)?;
            let store = open_store(&config).await?;
            let records = store.actions(open).await?;
            print_records(&records, format)?;
            Ok(ExitCode::SUCCESS)
        }
        ActionsCommand::Show { config, id, format } => {
            let config = config::load(&config.config)?;
            let store = open_store(&config).await?;
            let record = store.action(id).await.map_err(store_input_error)?;
            let steps = store.action_steps(id).await?;
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "action": record,
                        "steps": steps,
                    }))
                    .context("cannot render the action")?
                ),
                Format::Table => {
                    print_records(std::slice::from_ref(&record), format)?;
                    let mut table = table(&["AT", "STEP", "STATUS", "DETAIL"]);
                    for step in &steps {
                        table.add_row([
                            step.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            step.step.clone(),
                            step.status.to_string(),
                            step.detail.clone().unwrap_or_default(),
                        ]);
                    }
                    println!("{table}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ActionsCommand::Resume { config, format } => {
            let loaded = load(&config.config).await?;
            let clock = Utc::now;
            let records = actions::resume(loaded.engine(&clock))
                .await
                .map_err(action_failure)?;
            print_records(&records, format)?;
            let bad = records.iter().any(|it| {
                matches!(it.status, ActionStatus::Refused | ActionStatus::Failed)
                    || (it.status == ActionStatus::Running && it.reason.is_some())
            });
            Ok(if bad {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        ActionsCommand::Approve(it) => {
            let loaded = load(&it.config.config).await?;
            let clock = Utc::now;
            let record =
                actions::approve(loaded.engine(&clock), it.id, &it.by, it.reason.as_deref())
                    .await
                    .map_err(action_failure)?;
            print_records(std::slice::from_ref(&record), it.format)?;
            Ok(status_code(&record))
        }
        ActionsCommand::Reject(it) => {
            let loaded = load(&it.config.config).await?;
            let clock = Utc::now;
            let record =
                actions::reject(loaded.engine(&clock), it.id, &it.by, it.reason.as_deref())
                    .await
                    .map_err(action_failure)?;
            print_records(std::slice::from_ref(&record), it.format)?;
            Ok(ExitCode::SUCCESS)
        }
        ActionsCommand::Cancel {
            config,
            id,
            reason,
            by,
            format,
        } => {
            let loaded = load(&config.config).await?;
            let clock = Utc::now;
            let record = actions::cancel(loaded.engine(&clock), id, &reason, &by)
                .await
                .map_err(action_failure)?;
            print_records(std::slice::from_ref(&record), format)?;
            Ok(ExitCode::SUCCESS)
        }
        ActionsCommand::Retry {
            config,
            id,
            by,
            format,
        } => {
            let loaded = load(&config.config).await?;
            let clock = Utc::now;
            let record = actions::retry(loaded.engine(&clock), id, &by, true)
                .await
                .map_err(action_failure)?;
            print_records(std::slice::from_ref(&record), format)?;
            Ok(status_code(&record))
        }
    }
}

fn print_records(records: &[ActionRecord], format: Format) -> Result<(), Failure> {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(records).context("cannot render actions")?
        ),
        Format::Table => {
            let mut table = table(&[
                "ID",
                "ACTION",
                "STATUS",
                "STEP",
                "SOURCE",
                "CREDENTIAL",
                "NEXT",
                "REASON",
            ]);
            for it in records {
                table.add_row([
                    it.id.to_string(),
                    it.kind.to_string(),
                    it.status.to_string(),
                    it.step.clone(),
                    it.source.clone(),
                    it.credential_external_id.clone(),
                    it.next_at
                        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_default(),
                    it.reason.clone().unwrap_or_default(),
                ]);
            }
            println!("{table}");
        }
    }
    Ok(())
}
