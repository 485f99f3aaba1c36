//! The IAM credential report: one CSV for the whole account with, per user and key slot, whether
//! the key is active, when it was created ("last rotated") and when, where and for what it was
//! last used. It is the cheapest complete source of last use (one call instead of one
//! `GetAccessKeyLastUsed` per key) and of whether a user's key slots changed since the last scan.
//!
//! It carries no access key ids: slots are joined to keys by creation time, as AWS documents.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

/// One access key slot (`access_key_1_*` or `access_key_2_*`) or signing certificate slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Slot {
    pub active: bool,
    /// The key's creation time; `None` when the slot is empty (`N/A`).
    pub last_rotated: Option<DateTime<Utc>>,
    pub last_used: SlotUse,
    /// The region and service of the last use, when AWS reports them.
    pub region: Option<String>,
    pub service: Option<String>,
}

/// What a slot says about last use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum SlotUse {
    /// `no_information` or `not_supported`, or a value the parser does not know.
    #[default]
    Unknown,
    /// `N/A` on a slot that holds a key: never used since AWS began tracking.
    Never,
    At(DateTime<Utc>),
}

/// One user's row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Row {
    pub arn: String,
    pub keys: [Slot; 2],
    pub certs: [Slot; 2],
}

impl Row {
    /// The occupied key slots, as (active, creation time to the second): what the ledger's keys
    /// of this user must match for an incremental scan to skip `ListAccessKeys`.
    pub fn key_signature(&self) -> Vec<(bool, i64)> {
        signature(&self.keys)
    }

    /// The same for signing-certificate slots.
    pub fn cert_signature(&self) -> Vec<(bool, i64)> {
        signature(&self.certs)
    }

    /// Whether any certificate slot holds a certificate (active, or with a rotation date).
    pub fn has_certificates(&self) -> bool {
        self.certs
            .iter()
            .any(|it| it.active || it.last_rotated.is_some())
    }

    /// The key slot created at `created` (to the second), if exactly one is.
    pub fn key_slot(&self, created: DateTime<Utc>) -> Option<&Slot> {
        let mut found = self
            .keys
            .iter()
            .filter(|it| it.last_rotated.map(|at| at.timestamp()) == Some(created.timestamp()));
        match (found.next(), found.next()) {
            (Some(slot), None) => Some(slot),
            _ => None,
        }
    }
}

fn signature(slots: &[Slot; 2]) -> Vec<(bool, i64)> {
    let mut sig: Vec<(bool, i64)> = slots
        .iter()
        .filter_map(|it| it.last_rotated.map(|at| (it.active, at.timestamp())))
        .collect();
    sig.sort_unstable();
    sig
}

/// The parsed report.
#[derive(Clone, Debug, Default)]
pub(crate) struct Report {
    /// When AWS generated it: keys created later are not in it.
    pub generated_at: Option<DateTime<Utc>>,
    /// Rows by user name (the root account's row is left out).
    pub rows: HashMap<String, Row>,
}

/// A report that could not be parsed; the message names the line.
#[derive(Debug, thiserror::Error)]
#[error("credential report line {line}: {message}")]
pub(crate) struct ReportError {
    pub line: u64,
    pub message: String,
}

/// Parses the report's CSV.
pub(crate) fn parse(
    csv_text: &[u8],
    generated_at: Option<DateTime<Utc>>,
) -> Result<Report, ReportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_text);
    let headers = reader
        .headers()
        .map_err(|err| ReportError {
            line: 1,
            message: err.to_string(),
        })?
        .clone();
    let column = |name: &str| headers.iter().position(|it| it == name);
    let user_col = column("user").ok_or_else(|| ReportError {
        line: 1,
        message: "no `user` column".to_owned(),
    })?;
    let arn_col = column("arn");
    let slot_cols = |prefix: &str| SlotColumns {
        active: column(&format!("{prefix}_active")),
        last_rotated: column(&format!("{prefix}_last_rotated")),
        last_used: column(&format!("{prefix}_last_used_date")),
        region: column(&format!("{prefix}_last_used_region")),
        service: column(&format!("{prefix}_last_used_service")),
    };
    let key_cols = [slot_cols("access_key_1"), slot_cols("access_key_2")];
    let cert_cols = [slot_cols("cert_1"), slot_cols("cert_2")];

    let mut rows = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|err| ReportError {
            line: err.position().map_or(0, |it| it.line()),
            message: err.to_string(),
        })?;
        let line = record.position().map_or(0, |it| it.line());
        let Some(user) = record.get(user_col) else {
            continue;
        };
        if user == "<root_account>" {
            continue;
        }
        let get = |col: Option<usize>| col.and_then(|it| record.get(it)).unwrap_or("N/A");
        let slot = |cols: &SlotColumns| -> Result<Slot, ReportError> {
            let last_rotated = time(get(cols.last_rotated), line)?;
            let last_used = match get(cols.last_used) {
                "N/A" if last_rotated.is_some() => SlotUse::Never,
                "N/A" | "no_information" | "not_supported" => SlotUse::Unknown,
                other => time(other, line)?.map_or(SlotUse::Unknown, SlotUse::At),
            };
            Ok(Slot {
                active: get(cols.active) == "true",
                last_rotated,
                last_used,
                region: known(get(cols.region)),
                service: known(get(cols.service)),
            })
        };
        let row = Row {
            arn: get(arn_col).to_owned(),
            keys: [slot(&key_cols[0])?, slot(&key_cols[1])?],
            certs: [slot(&cert_cols[0])?, slot(&cert_cols[1])?],
        };
        rows.insert(user.to_owned(), row);
    }
    Ok(Report { generated_at, rows })
}

struct SlotColumns {
    active: Option<usize>,
    last_rotated: Option<usize>,
    last_used: Option<usize>,
    region: Option<usize>,
    service: Option<usize>,
}

/// A report value that names something, or `None` for AWS's placeholders.
fn known(value: &str) -> Option<String> {
    match value {
        "" | "N/A" | "no_information" | "not_supported" => None,
        other => Some(other.to_owned()),
    }
}

/// A report timestamp (ISO 8601 with an offset or `Z`), or `None` for a placeholder.
fn time(value: &str, line: u64) -> Result<Option<DateTime<Utc>>, ReportError> {
    if known(value).is_none() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(value)
        .map(|it| Some(it.with_timezone(&Utc)))
        .map_err(|err| ReportError {
            line,
            message: format!("`{value}` is not a timestamp: {err}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    #[test]
    fn parses_aws_report_rows() {
        let csv = format!(
            "{HEADER}\n\
             <root_account>,arn:aws:iam::123456789012:root,2020-01-01T00:00:00+00:00,not_supported,2024-01-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n\
             ci,arn:aws:iam::123456789012:user/ci,2020-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,true,2025-06-01T10:00:00+00:00,2026-11-01T09:30:00+00:00,eu-west-1,s3,false,2025-01-01T00:00:00.123456Z,N/A,N/A,N/A,true,2025-02-01T00:00:00+00:00,false,N/A\n\
             idle,arn:aws:iam::123456789012:user/idle,2020-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,true,2025-06-01T10:00:00+00:00,no_information,not_supported,not_supported,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"
        );
        let report = parse(csv.as_bytes(), None).expect("report");
        assert_eq!(report.rows.len(), 2, "the root row is left out");
        let ci = &report.rows["ci"];
        assert!(ci.keys[0].active);
        assert_eq!(
            ci.keys[0].last_used,
            SlotUse::At("2026-11-01T09:30:00Z".parse().expect("time"))
        );
        assert_eq!(ci.keys[0].region.as_deref(), Some("eu-west-1"));
        assert_eq!(ci.keys[0].service.as_deref(), Some("s3"));
        assert_eq!(ci.keys[1].last_used, SlotUse::Never, "N/A on a held key");
        assert!(!ci.keys[1].active);
        assert_eq!(ci.key_signature().len(), 2);
        assert!(ci.has_certificates());
        let idle = &report.rows["idle"];
        assert_eq!(idle.keys[0].last_used, SlotUse::Unknown);
        assert_eq!(idle.keys[0].service, None);
        assert_eq!(idle.keys[1], Slot::default(), "an empty slot");
        assert_eq!(idle.key_signature().len(), 1);
        let created = "2025-06-01T10:00:00Z".parse().expect("time");
        assert!(idle.key_slot(created).is_some());
    }

    #[test]
    fn bad_timestamp_names_its_line() {
        let csv = format!(
            "{HEADER}\nci,arn,x,false,N/A,N/A,N/A,false,true,yesterday,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"
        );
        let err = parse(csv.as_bytes(), None).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("yesterday"), "{err}");
    }
}
