//! Renders a scan for people (a table, worst first) and for machines (JSON).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use keywarden_connector::{CreatedSource, Fingerprint, LastUse};

use crate::actions::enforce::{Decision, Item, halt_finding_id};
use crate::ledger::LedgerCredential;
use crate::policy::Severity;
use crate::scan::{ScanReport, SkippedSummary};
use crate::store::{CredentialCursor, Finding, FindingStatus, PAGE, Store, StoreError};

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

/// What enforcement decided for each finding's action (empty when it did not run).
fn planned_actions(report: &ScanReport) -> &[Item] {
    report
        .enforcement
        .as_ref()
        .map_or(&[][..], |it| it.items.as_slice())
}

/// One line of the report's action section.
fn action_line(item: &Item, name: &str) -> String {
    let what = format!(
        "{} {name} ({}, policy {}, {})",
        item.action, item.source, item.policy, item.mode
    );
    let action = match (item.action_id, item.action_status) {
        (Some(id), Some(status)) => format!(": action {id} {status}"),
        _ => String::new(),
    };
    let reason = item
        .reason
        .as_deref()
        .map(|it| format!(" ({it})"))
        .unwrap_or_default();
    let verb = match item.decision {
        Decision::Started => "started",
        Decision::Retried => "retried",
        Decision::InProgress => "in progress:",
        Decision::AlreadyActed => "acted on earlier:",
        Decision::Deferred => "deferred:",
        Decision::Halted => "halted:",
        Decision::Stale => "not acted on (stale data):",
        Decision::Failed => "failed:",
        Decision::WouldAct => "would",
        Decision::WouldRefuse => "would refuse",
        Decision::Unsupported => "cannot act:",
        Decision::NothingToDo => "nothing to do:",
    };
    format!("  {verb} {what}{action}{reason}\n")
}

/// The report's signers section: each signer distrusted now (the worst first), then the trusted
/// ones, at most `limit` lines.
fn signers_text(report: &ScanReport, limit: usize) -> String {
    if report.signers.is_empty() {
        return String::new();
    }
    let now = report.started_at;
    let views: Vec<crate::signers::SignerView<'_>> =
        report.signers.iter().map(|it| it.view(now)).collect();
    let distrusted = views.iter().filter(|it| !it.trusted).count();
    let mut out = format!(
        "\nSigners: {} ({distrusted} distrusted now; `keywarden trust list` shows every one)\n",
        views.len()
    );
    let mut ordered: Vec<&crate::signers::SignerView<'_>> = views.iter().collect();
    ordered.sort_by_key(|it| it.trusted);
    for view in ordered.iter().take(limit) {
        let names: Vec<String> = view
            .credentials
            .iter()
            .map(|it| format!("{}/{}", it.source, it.name))
            .collect();
        let state = match &view.untrusted_because {
            None => "trusted".to_owned(),
            Some(why) => format!("NOT TRUSTED: {why}"),
        };
        out.push_str(&format!(
            "  {} {} ({} holders): {state}\n",
            view.key_id.get(..16).unwrap_or(view.key_id),
            if names.is_empty() {
                "(no credential left)".to_owned()
            } else {
                names.join(", ")
            },
            view.holders.len()
        ));
    }
    if ordered.len() > limit {
        out.push_str(&format!("  ... and {} more\n", ordered.len() - limit));
    }
    out
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the report: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot encode the report: {0}")]
    Json(#[from] serde_json::Error),
}

/// Calls `f` with every credential of the report's scope, reading the ledger page by page.
async fn each_credential(
    store: &dyn Store,
    report: &ScanReport,
    mut f: impl FnMut(&LedgerCredential) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let mut after = CredentialCursor::START;
    loop {
        let page = store.credentials_page(after, PAGE).await?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = *last;
        for (_, credential) in page.iter().filter(|(_, it)| report.in_scope(it)) {
            f(credential)?;
        }
    }
}

type FindingsByCredential<'a> = HashMap<(&'a str, &'a str), Vec<&'a Finding>>;

/// A credential's unresolved findings, worst first.
fn findings_of<'a>(
    by_credential: &FindingsByCredential<'a>,
    credential: &LedgerCredential,
) -> Vec<&'a Finding> {
    let mut findings = by_credential
        .get(&(
            credential.source.as_str(),
            credential.credential.external_id.as_str(),
        ))
        .cloned()
        .unwrap_or_default();
    findings.sort_by_key(|it| (Reverse(severity(it)), it.policy_id.clone()));
    findings
}

/// Orders credentials worst first: highest active severity, then oldest, then by name.
type RankKey = (Reverse<Option<Severity>>, DateTime<Utc>, String);

fn rank_key(credential: &LedgerCredential, findings: &[&Finding]) -> RankKey {
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
}

const HEADER: [&str; 9] = [
    "CREDENTIAL",
    "IDENTITY",
    "SOURCE",
    "KIND",
    "AGE",
    "LAST USED",
    "EXPIRES",
    "OWNER",
    "FINDINGS",
];

fn table_cells(
    credential: &LedgerCredential,
    findings: &[&Finding],
    now: DateTime<Utc>,
) -> [String; 9] {
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
    [
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
    ]
}

/// The human-readable report: at most `limit` credential rows, worst first. Only the rows shown
/// are kept in memory, whatever the size of the ledger.
pub async fn table(
    store: &dyn Store,
    report: &ScanReport,
    limit: Option<usize>,
) -> Result<String, ReportError> {
    let now = report.started_at;
    let by_credential = report.findings_by_credential();
    let planned = planned_actions(report);
    let planned_keys: HashSet<(&str, &str)> = planned
        .iter()
        .map(|it| (it.source.as_str(), it.credential.as_str()))
        .collect();
    let mut names: HashMap<(String, String), String> = HashMap::new();
    let limit = limit.unwrap_or(usize::MAX);
    // A max-heap of the `limit` worst rows: the least bad one is dropped first.
    let mut rows: BinaryHeap<(RankKey, [String; 9], bool)> = BinaryHeap::new();
    let mut total = 0_u64;
    each_credential(store, report, |credential| {
        total += 1;
        let key = (
            credential.source.as_str(),
            credential.credential.external_id.as_str(),
        );
        if planned_keys.contains(&key) {
            names.insert(
                (key.0.to_owned(), key.1.to_owned()),
                credential.credential.name.clone(),
            );
        }
        let findings = findings_of(&by_credential, credential);
        let rank = rank_key(credential, &findings);
        if limit == 0
            || (rows.len() >= limit && rows.peek().is_some_and(|(top, _, _)| rank >= *top))
        {
            return Ok(());
        }
        let first_seen = credential.created_source() == CreatedSource::FirstSeen;
        rows.push((rank, table_cells(credential, &findings, now), first_seen));
        if rows.len() > limit {
            rows.pop();
        }
        Ok(())
    })
    .await?;
    let rows = rows.into_sorted_vec();

    let mut out = String::new();
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(HEADER);
    for (_, cells, _) in &rows {
        table.add_row(cells.clone());
    }
    out.push_str(&table.to_string());
    out.push('\n');
    if (rows.len() as u64) < total {
        out.push_str(&format!(
            "... and {} more credentials (--all lists every one; --format json for machines)\n",
            total - rows.len() as u64
        ));
    }
    if rows.iter().any(|(_, _, first_seen)| *first_seen) {
        out.push_str(
            "* age counted from keywarden's first sighting: the material carries no creation time\n",
        );
    }

    let active = report.findings.iter().filter(|it| is_active(it)).count();
    out.push_str(&format!(
        "\n{total} credentials, {active} unresolved findings ({} new, {} resolved by this scan)\n",
        report.changes.opened + report.changes.reopened,
        report.changes.resolved,
    ));

    out.push_str(&signers_text(report, limit));
    for confirmed in report.sources.iter().flat_map(|it| &it.confirmed_leaks) {
        let leak = confirmed.leak();
        let answered = report.leaks.iter().find(|it| it.leak.id == leak.id);
        out.push_str(&format!(
            "\nLEAK CONFIRMED BY THE PROVIDER: {} ({}): {}\n",
            leak.location.as_deref().unwrap_or(&leak.id),
            leak.detector,
            match answered {
                None => "reported only (--no-enforce); an enforcing scan answers it".to_owned(),
                Some(it) if it.contained.is_empty() => format!(
                    "exposes {}",
                    if it.matched.is_empty() {
                        "no key in the ledger".to_owned()
                    } else {
                        it.matched
                            .iter()
                            .map(|m| m.credential_external_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
                Some(it) => format!("answered by actions {:?}", it.contained),
            }
        ));
    }

    if !planned.is_empty() {
        out.push_str("\nActions (dry_run policies only say what they would do):\n");
        for item in planned {
            let name = names
                .get(&(item.source.clone(), item.credential.clone()))
                .map_or(item.credential.as_str(), String::as_str);
            out.push_str(&action_line(item, name));
        }
    }
    for halt in report.enforcement.iter().flat_map(|it| &it.halts) {
        out.push_str(&format!(
            "\nENFORCEMENT HALTED: policy {} would act on {} of the {} credentials of {} (halt \
             share {:.0}%); it acted on none of them (critical finding {})\n",
            halt.policy,
            halt.would_act,
            halt.credentials,
            halt.source,
            halt.share * 100.0,
            halt_finding_id(&halt.policy),
        ));
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
    out.push_str(&skipped_text(report));
    Ok(out)
}

#[derive(serde::Serialize)]
struct FindingOut<'a> {
    id: i64,
    source: &'a str,
    credential: &'a str,
    policy: &'a str,
    severity: &'a str,
    status: &'static str,
    reason: &'a str,
    opened_at: DateTime<Utc>,
    suppressed_until: Option<DateTime<Utc>>,
    suppressed_by: Option<&'a str>,
    suppress_reason: Option<&'a str>,
}

impl<'a> From<&'a Finding> for FindingOut<'a> {
    fn from(finding: &'a Finding) -> Self {
        Self {
            id: finding.id,
            source: &finding.source,
            credential: &finding.credential_external_id,
            policy: &finding.policy_id,
            severity: &finding.severity,
            status: finding.status.as_str(),
            reason: &finding.reason,
            opened_at: finding.opened_at,
            suppressed_until: finding.suppressed_until,
            suppressed_by: finding.suppressed_by.as_deref(),
            suppress_reason: finding.suppress_reason.as_deref(),
        }
    }
}

#[derive(serde::Serialize)]
struct CredentialOut<'a> {
    source: &'a str,
    external_id: &'a str,
    name: &'a str,
    identity: &'a str,
    identity_kind: &'static str,
    kind: &'static str,
    status: &'static str,
    algorithm: Option<&'a str>,
    key_bits: Option<u32>,
    created_at: DateTime<Utc>,
    created_source: &'static str,
    age_days: i64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    last_used: &'a LastUse,
    expires_at: Option<DateTime<Utc>>,
    owner: Option<&'a str>,
    purpose: Option<&'a str>,
    fingerprints: &'a [Fingerprint],
    attributes: &'a BTreeMap<String, String>,
    findings: Vec<FindingOut<'a>>,
}

#[derive(serde::Serialize)]
struct SourceOut<'a> {
    name: &'a str,
    kind: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gone: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// What the connector left unread (counted by reason, the first few listed).
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<SkippedOut<'a>>,
}

#[derive(serde::Serialize)]
struct SkippedOut<'a> {
    total: u64,
    by_reason: BTreeMap<&'static str, u64>,
    /// The first [`crate::scan::SKIPPED_KEPT`].
    first: Vec<SkippedItem<'a>>,
}

#[derive(serde::Serialize)]
struct SkippedItem<'a> {
    subject: &'a str,
    reason: &'static str,
    detail: &'a str,
}

impl<'a> SkippedOut<'a> {
    fn of(skipped: &'a SkippedSummary) -> Option<Self> {
        (skipped.total > 0).then(|| Self {
            total: skipped.total,
            by_reason: skipped
                .by_reason
                .iter()
                .map(|(reason, n)| (reason.as_str(), *n))
                .collect(),
            first: skipped
                .first
                .iter()
                .map(|it| SkippedItem {
                    subject: &it.subject,
                    reason: it.reason.as_str(),
                    detail: &it.detail,
                })
                .collect(),
        })
    }
}

/// How many skipped records of a source the table lists.
const TABLE_SKIPPED: usize = 10;

/// The table's lines on what each source left unread.
fn skipped_text(report: &ScanReport) -> String {
    let mut out = String::new();
    for source in report.sources.iter().filter(|it| it.skipped.total > 0) {
        let skipped = &source.skipped;
        let reasons: Vec<String> = skipped
            .by_reason
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        out.push_str(&format!(
            "
{} left unread in source {} ({}):
",
            skipped.total,
            source.name,
            reasons.join(", ")
        ));
        for it in skipped.first.iter().take(TABLE_SKIPPED) {
            out.push_str(&format!("  {}: {}\n", it.subject, it.detail));
        }
        let shown = skipped.first.len().min(TABLE_SKIPPED) as u64;
        if skipped.total > shown {
            out.push_str(&format!(
                "  ... and {} more (--format json lists the first {})\n",
                skipped.total - shown,
                crate::scan::SKIPPED_KEPT
            ));
        }
    }
    out
}

#[derive(serde::Serialize)]
struct ChangesOut {
    opened: u64,
    reopened: u64,
    resolved: u64,
    suppression_expired: u64,
    still_open: u64,
}

#[derive(serde::Serialize)]
struct PlannedOut<'a> {
    #[serde(flatten)]
    item: &'a Item,
    /// Whether this run started (or retried) an action for it.
    taken: bool,
}

/// Everything of the JSON report but the credentials, which are streamed after it.
#[derive(serde::Serialize)]
struct ReportHead<'a> {
    scan_id: i64,
    started_at: DateTime<Utc>,
    sources: Vec<SourceOut<'a>>,
    findings: Vec<FindingOut<'a>>,
    changes: ChangesOut,
    planned_actions: Vec<PlannedOut<'a>>,
    halts: &'a [crate::actions::enforce::Halt],
    errors: &'a [crate::store::StoredScanError],
    /// Every signer's trust at the scan's time.
    signers: Vec<crate::signers::SignerView<'a>>,
    /// The leaks the providers confirmed, as the inventory saw them.
    confirmed_leaks: Vec<&'a crate::leaks::ConfirmedLeak>,
    /// How enforcement answered them (empty without enforcement).
    leaks: &'a [crate::intake::Outcome],
}

fn credential_out<'a>(
    it: &'a LedgerCredential,
    findings: Vec<&'a Finding>,
    now: DateTime<Utc>,
) -> CredentialOut<'a> {
    let credential = &it.credential;
    CredentialOut {
        source: &it.source,
        external_id: &credential.external_id,
        name: &credential.name,
        identity: &it.identity.name,
        identity_kind: it.identity.kind.as_str(),
        kind: credential.kind.as_str(),
        status: credential.status.as_str(),
        algorithm: credential.algorithm.as_deref(),
        key_bits: credential.key_bits,
        created_at: it.created_at(),
        created_source: it.created_source().as_str(),
        age_days: days(it.created_at(), now),
        first_seen: it.first_seen,
        last_seen: it.last_seen,
        last_used: &credential.last_used,
        expires_at: credential.expires_at,
        owner: it.owner(),
        purpose: it.purpose(),
        fingerprints: &credential.fingerprints,
        attributes: &credential.attributes,
        findings: findings.into_iter().map(FindingOut::from).collect(),
    }
}

/// Passes everything on but the first byte.
struct WithoutFirstByte<W> {
    inner: W,
    skipped: bool,
}

impl<W: std::io::Write> std::io::Write for WithoutFirstByte<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.skipped || buf.is_empty() {
            return self.inner.write(buf);
        }
        self.skipped = true;
        Ok(1 + self.inner.write(&buf[1..])?)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the machine-readable report: one JSON object whose first field, `credentials`, is
/// streamed from the ledger page by page (in ledger order), so its size does not bound memory.
pub async fn write_json(
    store: &dyn Store,
    report: &ScanReport,
    out: &mut impl std::io::Write,
) -> Result<(), ReportError> {
    let now = report.started_at;
    let sources = report
        .sources
        .iter()
        .map(|source| match &source.result {
            Ok(diff) => SourceOut {
                name: &source.name,
                kind: source.kind,
                status: "completed",
                credentials: Some(diff.seen),
                new: Some(diff.new),
                changed: Some(diff.changed),
                gone: Some(diff.gone),
                errors: Some(diff.errors),
                error: None,
                skipped: SkippedOut::of(&source.skipped),
            },
            Err(err) => SourceOut {
                name: &source.name,
                kind: source.kind,
                status: "failed",
                credentials: None,
                new: None,
                changed: None,
                gone: None,
                errors: None,
                error: Some(err),
                skipped: SkippedOut::of(&source.skipped),
            },
        })
        .collect();
    let planned_actions = planned_actions(report)
        .iter()
        .map(|item| PlannedOut {
            item,
            taken: matches!(item.decision, Decision::Started | Decision::Retried),
        })
        .collect();
    let head = ReportHead {
        scan_id: report.scan_id.0,
        started_at: report.started_at,
        sources,
        findings: report.findings.iter().map(FindingOut::from).collect(),
        changes: ChangesOut {
            opened: report.changes.opened,
            reopened: report.changes.reopened,
            resolved: report.changes.resolved,
            suppression_expired: report.changes.unsuppressed,
            still_open: report.changes.still_open,
        },
        planned_actions,
        halts: report
            .enforcement
            .as_ref()
            .map_or(&[][..], |it| it.halts.as_slice()),
        errors: &report.errors,
        signers: report.signers.iter().map(|it| it.view(now)).collect(),
        confirmed_leaks: report
            .sources
            .iter()
            .flat_map(|it| &it.confirmed_leaks)
            .collect(),
        leaks: &report.leaks,
    };
    out.write_all(b"{\"credentials\":[")?;
    let by_credential = report.findings_by_credential();
    let mut first = true;
    each_credential(store, report, |credential| {
        if !first {
            out.write_all(b",")?;
        }
        first = false;
        let findings = findings_of(&by_credential, credential);
        serde_json::to_writer(&mut *out, &credential_out(credential, findings, now))?;
        Ok(())
    })
    .await?;
    out.write_all(b"],")?;
    // The head is an object too: its fields continue this one.
    serde_json::to_writer(
        WithoutFirstByte {
            inner: &mut *out,
            skipped: false,
        },
        &head,
    )?;
    Ok(())
}
