//! `keywarden rotate|disable|delete|quarantine` and `keywarden actions list|show|resume`.

use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::{Args, Subcommand};

use super::{ConfigArg, Failure, Format, open_store, store_input_error, table};
use crate::actions::{self, ActionError, ActionKind};
use crate::config;
use crate::store::{ActionRecord, ActionStatus, Store};

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
    /// overlap or grace period is over).
    Resume {
        #[command(flatten)]
        config: ConfigArg,
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

/// The exit status of an action as it ended up: 0 done or waiting for its time, 1 refused,
/// failed, or stopped by a passing failure (`actions resume` continues it).
fn status_code(record: &ActionRecord) -> ExitCode {
    match record.status {
        ActionStatus::Done | ActionStatus::Waiting => ExitCode::SUCCESS,
        ActionStatus::Running | ActionStatus::Refused | ActionStatus::Failed => ExitCode::from(1),
    }
}

/// Runs (or, without `--enforce`, plans) one action.
pub async fn act(kind: ActionKind, args: ActOn) -> Result<ExitCode, Failure> {
    let config = config::load(&args.config.config)?;
    let connectors = config.build()?;
    let store = open_store(&config).await?;
    let target = actions::target(&store, &args.credential, args.source.as_deref())
        .await
        .map_err(action_failure)?;
    let key_actions = actions::key_actions(&connectors, &target.source).map_err(action_failure)?;
    if !args.enforce {
        let plan = actions::plan(key_actions.as_ref(), kind, &target)
            .await
            .with_context(|| format!("cannot plan the {kind} of {}", args.credential))?;
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
    let record = actions::start(&store, key_actions.as_ref(), kind, &target, "cli", &clock)
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
            let config = config::load(&config.config)?;
            let connectors = config.build()?;
            let store = open_store(&config).await?;
            let clock = Utc::now;
            let records = actions::resume(&store, &connectors, &clock)
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
                    it.kind.clone(),
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
