//! Renders a scan for people (a table, worst first) and for machines (JSON).

use std::cmp::Reverse;

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use keywarden_connector::{CreatedSource, LastUse};
use serde_json::{Value, json};

use crate::ledger::LedgerCredential;
use crate::policy::{ActionKind, PolicySet, Severity};
use crate::scan::ScanReport;
use crate::store::{Finding, FindingStatus};

fn severity(finding: &Finding) -> Option<Severity> {
    finding.severity.parse().ok()
}

/// Whether a finding counts against `--fail-on`: unresolved and not suppressed.
pub fn is_active(finding: &Finding) -> bool {
    matches!(
        finding.status,
        FindingStatus::Open | FindingStatus::Acknowledged
    )
}

/// The worst severity among the active findings, if any.
pub fn worst_active(findings: &[Finding]) -> Option<Severity> {
    findings
        .iter()
        .filter(|it| is_active(it))
        .filter_map(severity)
        .max()
}

fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_days()
}

fn age_text(credential: &LedgerCredential, now: DateTime<Utc>) -> String {
    let age = days(credential.created_at(), now);
    match credential.created_source() {
        CreatedSource::Material => format!("{age}d"),
        CreatedSource::FirstSeen => format!("{age}d*"),
    }
}

fn last_used_text(credential: &LedgerCredential, now: DateTime<Utc>) -> String {
    match &credential.credential.last_used {
        LastUse::Unknown => "unknown".to_owned(),
        LastUse::Never => "never".to_owned(),
        LastUse::At { at, .. } => format!("{}d ago", days(*at, now)),
    }
}

fn expires_text(credential: &LedgerCredential, now: DateTime<Utc>) -> String {
    match credential.credential.expires_at {
        None => "-".to_owned(),
        Some(at) if at <= now => format!("expired {}d ago", days(at, now)),
        Some(at) => format!("in {}d", days(now, at)),
    }
}

/// Credentials with their active findings, worst first (highest severity, then oldest).
fn ranked(report: &ScanReport) -> Vec<(&LedgerCredential, Vec<&Finding>)> {
    let by_credential = report.findings_by_credential();
    let mut rows: Vec<(&LedgerCredential, Vec<&Finding>)> = report
        .credentials
        .iter()
        .map(|credential| {
            let mut findings = by_credential
                .get(&(
                    credential.source.as_str(),
                    credential.credential.external_id.as_str(),
                ))
                .cloned()
                .unwrap_or_default();
            findings.sort_by_key(|it| (Reverse(severity(it)), it.policy_id.clone()));
            (credential, findings)
        })
        .collect();
    rows.sort_by_key(|(credential, findings)| {
        let worst = findings
            .iter()
            .filter(|it| is_active(it))
            .filter_map(|it| severity(it))
            .max();
        (
            Reverse(worst),
            credential.created_at(),
            credential.credential.name.clone(),
        )
    });
    rows
}

/// What the policies of the unresolved findings would do, beyond notifying.
fn planned_actions<'a>(
    report: &'a ScanReport,
    policies: &'a PolicySet,
) -> Vec<(&'a Finding, ActionKind, &'static str)> {
    let mut planned = Vec::new();
    for finding in report.findings.iter().filter(|it| is_active(it)) {
        let Some(policy) = policies
            .policies
            .iter()
            .find(|it| it.id == finding.policy_id)
        else {
            continue;
        };
        for action in &policy.actions {
            if *action != ActionKind::Notify {
                planned.push((finding, *action, policy.mode.as_str()));
            }
        }
    }
    planned
}

/// The human-readable report.
pub fn table(report: &ScanReport, policies: &PolicySet) -> String {
    let now = report.started_at;
    let mut out = String::new();
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header([
        "CREDENTIAL",
        "IDENTITY",
        "SOURCE",
        "KIND",
        "AGE",
        "LAST USED",
        "EXPIRES",
        "OWNER",
        "FINDINGS",
    ]);
    let rows = ranked(report);
    for (credential, findings) in &rows {
        let findings_text = findings
            .iter()
            .map(|it| {
                let marker = match it.status {
                    FindingStatus::Suppressed => " (suppressed)",
                    FindingStatus::Acknowledged => " (acknowledged)",
                    _ => "",
                };
                format!("{} {}{marker}", it.severity, it.policy_id)
            })
            .collect::<Vec<_>>()
            .join("\n");
        table.add_row([
            credential.credential.name.clone(),
            credential.identity.name.clone(),
            credential.source.clone(),
            credential.credential.kind.as_str().to_owned(),
            age_text(credential, now),
            last_used_text(credential, now),
            expires_text(credential, now),
            credential.owner().unwrap_or("(none)").to_owned(),
            if findings_text.is_empty() {
                "ok".to_owned()
            } else {
                findings_text
            },
        ]);
    }
    out.push_str(&table.to_string());
    out.push('\n');
    if rows
        .iter()
        .any(|(it, _)| it.created_source() == CreatedSource::FirstSeen)
    {
        out.push_str(
            "* age counted from keywarden's first sighting: the material carries no creation time\n",
        );
    }

    let active = report.findings.iter().filter(|it| is_active(it)).count();
    out.push_str(&format!(
        "\n{} credentials, {} unresolved findings ({} new, {} resolved by this scan)\n",
        report.credentials.len(),
        active,
        report.changes.opened + report.changes.reopened,
        report.changes.resolved,
    ));

    let planned = planned_actions(report, policies);
    let names: std::collections::HashMap<(&str, &str), &str> = report
        .credentials
        .iter()
        .map(|it| {
            (
                (it.source.as_str(), it.credential.external_id.as_str()),
                it.credential.name.as_str(),
            )
        })
        .collect();
    if !planned.is_empty() {
        out.push_str(
            "\nWhat would be done (actions are carried out by later versions; none was taken):\n",
        );
        for (finding, action, mode) in planned {
            out.push_str(&format!(
                "  {} {} ({}, policy {}, {})\n",
                action.as_str(),
                names
                    .get(&(
                        finding.source.as_str(),
                        finding.credential_external_id.as_str()
                    ))
                    .copied()
                    .unwrap_or(&finding.credential_external_id),
                finding.source,
                finding.policy_id,
                mode,
            ));
        }
    }

    for source in &report.sources {
        if let Err(err) = &source.result {
            out.push_str(&format!(
                "\nsource {} ({}) could not be scanned: {err}\n",
                source.name, source.kind
            ));
        }
    }
    if !report.errors.is_empty() {
        out.push_str(&format!("\n{} scan errors:\n", report.errors.len()));
        for error in &report.errors {
            out.push_str(&format!(
                "  {}: {}: {}\n",
                error.source, error.subject, error.message
            ));
        }
    }
    out
}

fn last_used_json(last_used: &LastUse) -> Value {
    match last_used {
        LastUse::Unknown => json!({ "state": "unknown" }),
        LastUse::Never => json!({ "state": "never" }),
        LastUse::At { at, source } => json!({ "state": "at", "at": at, "source": source }),
    }
}

fn finding_json(finding: &Finding) -> Value {
    json!({
        "id": finding.id,
        "source": finding.source,
        "credential": finding.credential_external_id,
        "policy": finding.policy_id,
        "severity": finding.severity,
        "status": finding.status.as_str(),
        "reason": finding.reason,
        "opened_at": finding.opened_at,
        "suppressed_until": finding.suppressed_until,
        "suppressed_by": finding.suppressed_by,
        "suppress_reason": finding.suppress_reason,
    })
}

/// The machine-readable report.
pub fn json(report: &ScanReport, policies: &PolicySet) -> Value {
    let now = report.started_at;
    let credentials: Vec<Value> = ranked(report)
        .into_iter()
        .map(|(it, findings)| {
            let credential = &it.credential;
            json!({
                "source": it.source,
                "external_id": credential.external_id,
                "name": credential.name,
                "identity": it.identity.name,
                "identity_kind": it.identity.kind.as_str(),
                "kind": credential.kind.as_str(),
                "status": credential.status.as_str(),
                "algorithm": credential.algorithm,
                "key_bits": credential.key_bits,
                "created_at": it.created_at(),
                "created_source": it.created_source().as_str(),
                "age_days": days(it.created_at(), now),
                "first_seen": it.first_seen,
                "last_seen": it.last_seen,
                "last_used": last_used_json(&credential.last_used),
                "expires_at": credential.expires_at,
                "owner": it.owner(),
                "purpose": it.purpose(),
                "fingerprints": credential.fingerprints,
                "attributes": credential.attributes,
                "findings": findings.iter().map(|it| finding_json(it)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let sources: Vec<Value> = report
        .sources
        .iter()
        .map(|source| match &source.result {
            Ok(diff) => json!({
                "name": source.name,
                "kind": source.kind,
                "status": "completed",
                "credentials": diff.seen,
                "new": diff.new,
                "changed": diff.changed,
                "gone": diff.gone,
                "errors": diff.errors,
            }),
            Err(err) => json!({
                "name": source.name,
                "kind": source.kind,
                "status": "failed",
                "error": err,
            }),
        })
        .collect();
    let planned: Vec<Value> = planned_actions(report, policies)
        .into_iter()
        .map(|(finding, action, mode)| {
            json!({
                "finding": finding.id,
                "action": action.as_str(),
                "mode": mode,
                "source": finding.source,
                "credential": finding.credential_external_id,
                "policy": finding.policy_id,
                "taken": false,
            })
        })
        .collect();
    json!({
        "scan_id": report.scan_id.0,
        "started_at": report.started_at,
        "sources": sources,
        "credentials": credentials,
        "findings": report.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "changes": {
            "opened": report.changes.opened,
            "reopened": report.changes.reopened,
            "resolved": report.changes.resolved,
            "suppression_expired": report.changes.unsuppressed,
            "still_open": report.changes.still_open,
        },
        "planned_actions": planned,
        "errors": report.errors,
    })
}
