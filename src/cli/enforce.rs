//! `keywarden enforce`: scan, then enforce, and report what enforcement did for every finding.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::{Failure, Format, Scanned, scan_and_enforce, table};
use crate::actions::enforce::{Decision, halt_finding_id};

pub async fn run(path: &Path, format: Format, no_progress: bool) -> Result<ExitCode, Failure> {
    let Scanned { store, report } = scan_and_enforce(path, no_progress, true).await?;
    let enforcement = report.enforcement.unwrap_or_default();
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&enforcement).context("cannot render the report")?
        ),
        Format::Table => {
            let mut rows = table(&[
                "FINDING",
                "DECISION",
                "ACTION",
                "CREDENTIAL",
                "SOURCE",
                "POLICY",
                "MODE",
                "ACTION ID",
                "STATUS",
                "REASON",
            ]);
            for item in &enforcement.items {
                let decision = serde_json::to_value(item.decision)
                    .ok()
                    .and_then(|it| it.as_str().map(str::to_owned))
                    .unwrap_or_default();
                rows.add_row([
                    item.finding.to_string(),
                    decision,
                    item.action.to_string(),
                    item.credential.clone(),
                    item.source.clone(),
                    item.policy.clone(),
                    item.mode.to_string(),
                    item.action_id.map(|it| it.to_string()).unwrap_or_default(),
                    item.action_status
                        .map(|it| it.to_string())
                        .unwrap_or_default(),
                    item.reason.clone().unwrap_or_default(),
                ]);
            }
            println!("{rows}");
            let count = |decision: Decision| {
                enforcement
                    .items
                    .iter()
                    .filter(|it| it.decision == decision)
                    .count()
            };
            println!(
                "{} started, {} retried, {} deferred, {} halted, {} stale, {} dry run",
                count(Decision::Started),
                count(Decision::Retried),
                count(Decision::Deferred),
                count(Decision::Halted),
                count(Decision::Stale),
                count(Decision::WouldAct) + count(Decision::WouldRefuse),
            );
            for halt in &enforcement.halts {
                println!(
                    "ENFORCEMENT HALTED: policy {} would act on {} of the {} credentials of {}; \
                     it acted on none of them (critical finding {})",
                    halt.policy,
                    halt.would_act,
                    halt.credentials,
                    halt.source,
                    halt_finding_id(&halt.policy)
                );
            }
        }
    }
    store.close().await;
    Ok(if enforcement.halts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
