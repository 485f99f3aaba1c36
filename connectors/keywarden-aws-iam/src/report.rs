//! The IAM credential report: one CSV for the whole account with, per user and key slot, whether
//! the key is active, when it was created ("last rotated") and when, where and for what it was
//! last used. It is the cheapest complete source of last use (one call instead of one
//! `GetAccessKeyLastUsed` per key) and of whether a user's key slots changed since the last scan.
//!
//! It carries no access key ids: slots are joined to keys by creation time, as AWS documents.

use std::collections::HashMap;

use chrono::{DateTime, Timelike, Utc};

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

    /// How many certificate slots hold a certificate (active, or with a rotation date).
    pub fn certificate_count(&self) -> usize {
        self.certs
            .iter()
            .filter(|it| it.active || it.last_rotated.is_some())
            .count()
    }

    /// Whether any certificate slot holds a certificate.
    pub fn has_certificates(&self) -> bool {
        self.certificate_count() > 0
    }

    /// Which slot holds each of the user's listed keys, given as (active, created), in the
    /// order listed. The report has no key ids: a slot is a key's when it was created in the
    /// same second. When both keys share their creation second (keys made together), slots and
    /// keys are told apart by what else differs:
    /// - slots that give the same last use (date, region and service) cannot be confused: each
    ///   key gets one;
    /// - else one active and one inactive key, with one active and one inactive slot, match
    ///   by status;
    /// - else the pair is [`KeySlot::Ambiguous`]: one key's use is read with the API, and the
    ///   slot it matches tells which is the other key's ([`Row::slot_with_use`]).
    ///
    /// Neither the report nor `ListAccessKeys` documents an order, so order alone is never
    /// taken as a match.
    pub fn match_keys(&self, keys: &[(bool, Option<DateTime<Utc>>)]) -> Vec<KeySlot> {
        let second = |at: Option<DateTime<Utc>>| at.map(|it| it.timestamp());
        let mut out = vec![KeySlot::Missing; keys.len()];
        let mut done = vec![false; keys.len()];
        for i in 0..keys.len() {
            let Some(at) = second(keys[i].1).filter(|_| !done[i]) else {
                continue;
            };
            let group: Vec<usize> = (0..keys.len())
                .filter(|j| second(keys[*j].1) == Some(at))
                .collect();
            let slots: Vec<usize> = (0..self.keys.len())
                .filter(|j| second(self.keys[*j].last_rotated) == Some(at))
                .collect();
            for j in &group {
                done[*j] = true;
            }
            let [first, other] = &self.keys;
            match (group.as_slice(), slots.as_slice()) {
                ([key], [slot]) => out[*key] = KeySlot::Slot(*slot),
                // A key gone since the report was made in the same second as this one.
                ([key], [_, _]) if first.same_use(other) => out[*key] = KeySlot::Slot(0),
                ([a, b], [_, _]) if first.same_use(other) => {
                    (out[*a], out[*b]) = (KeySlot::Slot(0), KeySlot::Slot(1));
                }
                ([a, b], [_, _]) if keys[*a].0 != keys[*b].0 && first.active != other.active => {
                    let slot_of_a = usize::from(first.active != keys[*a].0);
                    out[*a] = KeySlot::Slot(slot_of_a);
                    out[*b] = KeySlot::Slot(1 - slot_of_a);
                }
                ([a, b], [_, _]) => {
                    out[*a] = KeySlot::Ambiguous { other: *b };
                    out[*b] = KeySlot::Ambiguous { other: *a };
                }
                // No slot of that second (a key newer than the report), or more keys than
                // slots: the report cannot say.
                _ => {}
            }
        }
        out
    }

    /// The one key slot whose last use is `used` (date to the second, region, service): which
    /// slot an [`KeySlot::Ambiguous`] key is in, once its use has been read with the API.
    pub fn slot_with_use(
        &self,
        used: &SlotUse,
        region: Option<&str>,
        service: Option<&str>,
    ) -> Option<usize> {
        let second = |it: &SlotUse| match it {
            SlotUse::At(at) => SlotUse::At(at.with_nanosecond(0).unwrap_or(*at)),
            other => other.clone(),
        };
        let mut found = (0..self.keys.len()).filter(|j| {
            let slot = &self.keys[*j];
            slot.last_rotated.is_some()
                && second(&slot.last_used) == second(used)
                && slot.region.as_deref() == region
                && slot.service.as_deref() == service
        });
        match (found.next(), found.next()) {
            (Some(slot), None) => Some(slot),
            _ => None,
        }
    }
}

/// Where a listed key's last use is in the report (see [`Row::match_keys`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeySlot {
    /// Key slot 0 (`access_key_1_*`) or 1 (`access_key_2_*`).
    Slot(usize),
    /// This key and the one at index `other` were created in the same second and the report
    /// cannot tell their slots apart.
    Ambiguous { other: usize },
    /// No slot holds the key (it is newer than the report).
    Missing,
}

impl Slot {
    /// Whether two slots give the same last use.
    fn same_use(&self, other: &Slot) -> bool {
        (&self.last_used, &self.region, &self.service)
            == (&other.last_used, &other.region, &other.service)
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
        // A column the report lacks tells nothing: `no_information`, never AWS's `N/A` (which
        // next to a rotation date means "never used").
        let get = |col: Option<usize>| {
            col.and_then(|it| record.get(it))
                .unwrap_or("no_information")
        };
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

    /// A report as AWS writes it: the root account, a user with two keys and a certificate, an
    /// idle user.
    fn aws_report() -> String {
        format!(
            "{HEADER}\n\
             <root_account>,arn:aws:iam::123456789012:root,2020-01-01T00:00:00+00:00,not_supported,2024-01-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n\
             ci,arn:aws:iam::123456789012:user/ci,2020-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,true,2025-06-01T10:00:00+00:00,2026-11-01T09:30:00+00:00,eu-west-1,s3,false,2025-01-01T00:00:00.123456Z,N/A,N/A,N/A,true,2025-02-01T00:00:00+00:00,false,N/A\n\
             idle,arn:aws:iam::123456789012:user/idle,2020-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,true,2025-06-01T10:00:00+00:00,no_information,not_supported,not_supported,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"
        )
    }

    #[test]
    fn parses_aws_report_rows() {
        let csv = aws_report();
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
        assert_eq!(
            idle.match_keys(&[(true, Some(created))]),
            vec![KeySlot::Slot(0)]
        );
    }

    fn slot(active: bool, rotated: &str, used: SlotUse, service: Option<&str>) -> Slot {
        Slot {
            active,
            last_rotated: Some(rotated.parse().expect("time")),
            last_used: used,
            region: service.map(|_| "us-east-1".to_owned()),
            service: service.map(str::to_owned),
        }
    }

    fn at(value: &str) -> DateTime<Utc> {
        value.parse().expect("time")
    }

    #[test]
    fn key_slots_are_matched_by_creation_second_then_use_then_status() {
        let made = "2025-06-01T10:00:00Z";
        let used = SlotUse::At(at("2026-11-01T09:30:00Z"));
        // Listed keys carry sub-second creation times; the report has seconds.
        let key = |active: bool| (active, Some(at("2025-06-01T10:00:00.250Z")));
        let row = |keys: [Slot; 2]| Row {
            keys,
            ..Row::default()
        };

        // Different seconds: each key its own slot, whatever the order listed.
        let apart = row([
            slot(true, "2025-01-01T00:00:00Z", used.clone(), Some("s3")),
            slot(true, made, SlotUse::Never, None),
        ]);
        assert_eq!(
            apart.match_keys(&[key(true), (true, Some(at("2025-01-01T00:00:00.9Z")))]),
            vec![KeySlot::Slot(1), KeySlot::Slot(0)]
        );

        // The same second and the same use: either slot is right, each key gets one.
        let alike = row([
            slot(true, made, SlotUse::Never, None),
            slot(true, made, SlotUse::Never, None),
        ]);
        assert_eq!(
            alike.match_keys(&[key(true), key(true)]),
            vec![KeySlot::Slot(0), KeySlot::Slot(1)]
        );

        // The same second, different uses, different status: by status, in either order.
        let by_status = row([
            slot(false, made, SlotUse::Never, None),
            slot(true, made, used.clone(), Some("s3")),
        ]);
        assert_eq!(
            by_status.match_keys(&[key(true), key(false)]),
            vec![KeySlot::Slot(1), KeySlot::Slot(0)]
        );
        assert_eq!(
            by_status.match_keys(&[key(false), key(true)]),
            vec![KeySlot::Slot(0), KeySlot::Slot(1)]
        );

        // The same second and status, different uses: the report cannot tell.
        let ambiguous = row([
            slot(true, made, SlotUse::Never, None),
            slot(true, made, used.clone(), Some("s3")),
        ]);
        assert_eq!(
            ambiguous.match_keys(&[key(true), key(true)]),
            vec![
                KeySlot::Ambiguous { other: 1 },
                KeySlot::Ambiguous { other: 0 }
            ]
        );
        // Both keys active but the report says one is not (it is hours old): not by status.
        assert_eq!(
            by_status.match_keys(&[key(true), key(true)]),
            vec![
                KeySlot::Ambiguous { other: 1 },
                KeySlot::Ambiguous { other: 0 }
            ]
        );
        // One key's answer from the API names its slot, so the other key has the other one.
        assert_eq!(
            ambiguous.slot_with_use(
                &SlotUse::At(at("2026-11-01T09:30:00.700Z")),
                Some("us-east-1"),
                Some("s3")
            ),
            Some(1)
        );
        assert_eq!(
            ambiguous.slot_with_use(&SlotUse::Never, None, None),
            Some(0)
        );
        // A use the report does not show (newer than the report): no slot.
        assert_eq!(
            ambiguous.slot_with_use(
                &SlotUse::At(at("2026-11-02T00:00:00Z")),
                Some("us-east-1"),
                Some("s3")
            ),
            None
        );

        // A key newer than the report: in no slot.
        assert_eq!(
            apart.match_keys(&[(true, Some(at("2026-12-01T00:00:00Z")))]),
            vec![KeySlot::Missing]
        );
    }

    #[test]
    fn a_column_the_report_lacks_tells_nothing_not_never_used() {
        // No `access_key_1_last_used_date` column: the held key's use is unknown, never "never
        // used" (which would open an unused-key finding on a key in daily use).
        let header = HEADER.replace("access_key_1_last_used_date,", "");
        let csv = format!(
            "{header}\nci,arn:aws:iam::123456789012:user/ci,2020-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,true,2025-06-01T10:00:00+00:00,eu-west-1,s3,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"
        );
        let report = parse(csv.as_bytes(), None).expect("report");
        let ci = &report.rows["ci"];
        assert!(ci.keys[0].last_rotated.is_some());
        assert_eq!(ci.keys[0].last_used, SlotUse::Unknown);
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

    /// xorshift64*: a small deterministic generator, so every run tries the same inputs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// A number below `n` (which must not be 0).
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn byte(&mut self) -> u8 {
            self.next() as u8
        }
    }

    /// One mutated report.
    struct Case {
        what: String,
        input: Vec<u8>,
        /// The lines an error must name, when the mutation pins them down: a change that leaves
        /// the header and every line before it intact can only be reported on a line it touched.
        error_lines: Option<std::ops::RangeInclusive<u64>>,
    }

    fn case(
        what: String,
        input: Vec<u8>,
        error_lines: Option<std::ops::RangeInclusive<u64>>,
    ) -> Case {
        Case {
            what,
            input,
            error_lines,
        }
    }

    /// The line (from 1) that byte `at` of `bytes` is on.
    fn line_at(bytes: &[u8], at: usize) -> u64 {
        1 + bytes[..at].iter().filter(|it| **it == b'\n').count() as u64
    }

    /// Lines `first..=last` when the header is intact (a changed header can move any column).
    fn pinned(first: u64, last: u64) -> Option<std::ops::RangeInclusive<u64>> {
        (first >= 2).then_some(first..=last)
    }

    /// The report's lines, each with its `\n`.
    fn lines_of(csv: &[u8]) -> Vec<Vec<u8>> {
        csv.split_inclusive(|it| *it == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// The report's fields, line by line.
    fn fields_of(csv: &str) -> Vec<Vec<String>> {
        csv.lines()
            .map(|it| it.split(',').map(str::to_owned).collect())
            .collect()
    }

    fn join(fields: Vec<Vec<String>>) -> Vec<u8> {
        let mut lines: Vec<String> = fields.into_iter().map(|it| it.join(",")).collect();
        lines.push(String::new());
        lines.join("\n").into_bytes()
    }

    /// The report with field `column` of line `line` (from 1) replaced.
    fn with_field(csv: &str, line: usize, column: usize, value: &str) -> Vec<u8> {
        let mut fields = fields_of(csv);
        fields[line - 1][column] = value.to_owned();
        join(fields)
    }

    /// Mutations of a valid report: byte flips, truncations, lost and repeated lines, swapped
    /// columns, random bytes and invalid UTF-8, huge fields and stray quotes.
    fn mutations(csv: &str) -> Vec<Case> {
        let bytes = csv.as_bytes();
        let lines = lines_of(bytes);
        let columns = HEADER.split(',').count();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut out = Vec::new();

        for len in 0..=bytes.len() {
            let line = line_at(bytes, len);
            out.push(case(
                format!("truncated to {len} bytes"),
                bytes[..len].to_vec(),
                pinned(line, line),
            ));
        }
        for i in 0..1500 {
            let at = rng.below(bytes.len());
            let mut it = bytes.to_vec();
            it[at] = if i % 2 == 0 {
                it[at] ^ (1 << rng.below(8))
            } else {
                rng.byte()
            };
            // A new line end splits the line: its second half is the next line.
            let line = line_at(bytes, at);
            let last = line + u64::from(it[at] == b'\n');
            out.push(case(
                format!("byte {at} set to {:#04x}", it[at]),
                it,
                pinned(line, last),
            ));
        }
        for i in 0..300 {
            let mut it = bytes.to_vec();
            for _ in 0..2 + rng.below(6) {
                let at = rng.below(it.len());
                it[at] = rng.byte();
            }
            out.push(case(format!("several bytes changed #{i}"), it, None));
        }
        for at in 0..lines.len() {
            let mut deleted = lines.clone();
            deleted.remove(at);
            out.push(case(
                format!("line {} deleted", at + 1),
                deleted.concat(),
                None,
            ));
            let mut repeated = lines.clone();
            repeated.insert(at, lines[at].clone());
            out.push(case(
                format!("line {} repeated", at + 1),
                repeated.concat(),
                None,
            ));
            let mut unterminated = lines[..=at].to_vec();
            if let Some(last) = unterminated.last_mut() {
                last.pop();
            }
            out.push(case(
                format!("ends in line {} without a newline", at + 1),
                unterminated.concat(),
                None,
            ));
        }
        for _ in 0..300 {
            let line = 1 + rng.below(lines.len());
            let (a, b) = (rng.below(columns), rng.below(columns));
            let mut fields = fields_of(csv);
            fields[line - 1].swap(a, b);
            out.push(case(
                format!("columns {a} and {b} of line {line} swapped"),
                join(fields),
                pinned(line as u64, line as u64),
            ));
        }
        for i in 0..300 {
            let len = rng.below(300);
            let noise: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            out.push(case(format!("random bytes #{i}"), noise.clone(), None));
            // Noise (mostly invalid UTF-8, maybe line ends) spliced into the report.
            let noise = &noise[..len.min(8)];
            let at = rng.below(bytes.len());
            let mut spliced = bytes[..at].to_vec();
            spliced.extend_from_slice(noise);
            spliced.extend_from_slice(&bytes[at..]);
            let line = line_at(bytes, at);
            let newlines = noise.iter().filter(|it| **it == b'\n').count() as u64;
            out.push(case(
                format!("noise {noise:?} spliced at byte {at}"),
                spliced,
                pinned(line, line + newlines),
            ));
        }
        for bad in [
            &b"\xff\xfe"[..],
            b"\xc3\x28",
            b"\xe2\x82",
            b"\xf0\x9f\x98",
            b"\x80",
        ] {
            for line in 0..lines.len() {
                let mut it = lines.clone();
                it[line].splice(0..0, bad.iter().copied());
                let line = line as u64 + 1;
                out.push(case(
                    format!("invalid UTF-8 {bad:?} opening line {line}"),
                    it.concat(),
                    Some(line..=line),
                ));
            }
        }
        let huge_time = format!("2025-06-01T10:00:00.{}Z", "9".repeat(100_000));
        let huge_year = format!("{}-06-01T10:00:00Z", "9".repeat(100_000));
        for line in 1..=lines.len() {
            for column in 0..columns {
                for value in ["x".repeat(100_000), huge_time.clone(), huge_year.clone()] {
                    out.push(case(
                        format!(
                            "a {}-byte field in column {column} of line {line}",
                            value.len()
                        ),
                        with_field(csv, line, column, &value),
                        pinned(line as u64, line as u64),
                    ));
                }
            }
        }
        for value in [
            "+275760-09-13T00:00:00Z",
            "9999-12-31T23:59:59-23:59",
            "0000-01-01T00:00:00+23:59",
            "2025-02-30T00:00:00Z",
            "2025-06-01T24:00:00Z",
            "2025-06-01T23:59:60Z",
            "2025-06-01T10:00:00+99:99",
            "2025-06-01T10:00:00.Z",
            "",
            " ",
            "\u{feff}",
            "é",
        ] {
            // The key and certificate slots' times of `ci`.
            for column in [9, 10, 14, 15, 19, 21] {
                out.push(case(
                    format!("`{value}` in column {column} of line 3"),
                    with_field(csv, 3, column, value),
                    Some(3..=3),
                ));
            }
        }
        for i in 0..600 {
            let mut it = bytes.to_vec();
            let quotes: &[u8] = match rng.below(4) {
                0 => b"\"",
                1 => b"\"\"",
                2 => b"\"\"\"",
                _ => b"\",\"",
            };
            let (mut first, mut last) = (u64::MAX, 0);
            for _ in 0..=rng.below(2) {
                let at = rng.below(it.len() + 1);
                // Quotes hold no line end: the lines keep their numbers.
                let line = line_at(&it, at);
                (first, last) = (first.min(line), last.max(line));
                it.splice(at..at, quotes.iter().copied());
            }
            out.push(case(format!("quotes #{i}"), it, pinned(first, last)));
        }
        for (what, input) in [
            ("an unclosed quote at the end", format!("{csv}\"ci")),
            (
                "a quoted user with a newline",
                csv.replacen("\nci,", "\n\"c\ni\",", 1),
            ),
            ("only the header", format!("{HEADER}\n")),
            ("only newlines", "\n\n\n".to_owned()),
            ("CR line ends", csv.replace('\n', "\r")),
            ("CRLF line ends", csv.replace('\n', "\r\n")),
            ("a BOM", format!("\u{feff}{csv}")),
            ("a NUL", csv.replacen("ci", "c\0i", 1)),
        ] {
            out.push(case(what.to_owned(), input.into_bytes(), None));
        }
        out
    }

    #[test]
    fn mutated_reports_never_panic_and_errors_name_their_line() {
        let csv = aws_report();
        let cases = mutations(&csv);
        assert!(cases.len() > 3000, "{}", cases.len());
        let mut failures = Vec::new();
        let (mut ok, mut err) = (0, 0);
        for Case {
            what,
            input,
            error_lines,
        } in &cases
        {
            let result = std::panic::catch_unwind(|| parse(input, None));
            let lines = line_at(input, input.len());
            match result {
                Err(_) => failures.push(format!("{what}: parse panicked")),
                Ok(Ok(report)) => {
                    ok += 1;
                    if report.rows.contains_key("<root_account>") {
                        failures.push(format!("{what}: the root account's row was kept"));
                    }
                }
                Ok(Err(error)) => {
                    err += 1;
                    let text = error.to_string();
                    if !text.starts_with(&format!("credential report line {}: ", error.line)) {
                        failures.push(format!(
                            "{what}: the message does not name the line: {text}"
                        ));
                    }
                    let expected = error_lines.clone().unwrap_or(1..=lines);
                    if !input.is_empty() && !expected.contains(&error.line) {
                        failures.push(format!(
                            "{what}: error names line {}, not one of {expected:?}: {text}",
                            error.line
                        ));
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} mutations:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
        // The mutations reach both outcomes: they are not all rejected up front.
        assert!(ok > 100 && err > 100, "ok {ok}, err {err}");
    }
}
