//! Cron schedules of policies: the crontab five-field form (with crontab's day-of-week numbering)
//! and the `cron` crate's own six- and seven-field forms.

use std::str::FromStr;

/// A cron expression in any of the accepted forms (see the module docs of [`super`]).
pub(super) fn parse_cron(text: &str) -> Result<cron::Schedule, String> {
    let text = text.trim();
    let expression = if text.starts_with('@') {
        text.to_owned()
    } else {
        let fields: Vec<&str> = text.split_whitespace().collect();
        match fields.as_slice() {
            [minute, hour, day_of_month, month, day_of_week] => format!(
                "0 {minute} {hour} {day_of_month} {month} {}",
                crontab_weekdays(day_of_week)?
            ),
            [_, _, _, _, _, _] | [_, _, _, _, _, _, _] => fields.join(" "),
            _ => return Err(format!("{} fields", fields.len())),
        }
    };
    cron::Schedule::from_str(&expression).map_err(|err| {
        // The crate's message is the expression, a caret line, then the reason: keep the reason.
        let message = err.to_string();
        message
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or(&message)
            .trim()
            .to_owned()
    })
}

/// Crontab's three-letter day names, Sunday first (crontab numbers them 0-6, and 7 is Sunday too).
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Translates a crontab day-of-week field into the `cron` crate's form.
///
/// Crontab numbers days 0-7 (0 and 7 are Sunday) or names them `SUN`..`SAT` (any case); a field
/// is a comma-separated list of `*`, a day, a range `a-b`, each optionally with a step `/n`
/// (`a/n` runs from `a` to the end of the week). A range may end on Sunday written as `7`, `0` or
/// `SUN` (`FRI-SUN` is Friday, Saturday and Sunday); any other range that runs backwards is an
/// error. The days are expanded here and handed to the `cron` crate as its own numbers (1-7, 1
/// is Sunday), so no crontab number is ever read in the crate's numbering.
pub(super) fn crontab_weekdays(field: &str) -> Result<String, String> {
    if field == "*" {
        return Ok("*".to_owned());
    }
    // Index 0 is Sunday.
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(weekday_step(step)?)),
            None => (item, None),
        };
        let (first, last) = if range == "*" {
            (0, 6)
        } else if let Some((first, last)) = range.split_once('-') {
            let first = weekday(first)?;
            let last = match weekday(last)? {
                // A range ending on Sunday: `FRI-SUN`, `5-0`.
                0 if first > 0 => 7,
                last => last,
            };
            if first > last {
                return Err(format!(
                    "day-of-week range `{range}` runs backwards; write it in week order, e.g. \
                     `FRI-SUN` or `SAT,SUN,MON`"
                ));
            }
            (first, last)
        } else {
            let day = weekday(range)?;
            (day, if step.is_some() { 7 } else { day })
        };
        let step = usize::from(step.unwrap_or(1));
        for day in (first..=last).step_by(step) {
            days[usize::from(day % 7)] = true;
        }
    }
    let numbers: Vec<String> = (0u8..7)
        .filter(|day| days[usize::from(*day)])
        .map(|day| (day + 1).to_string())
        .collect();
    Ok(numbers.join(","))
}

/// One crontab day: `0`-`7` or a three-letter name, any case.
fn weekday(text: &str) -> Result<u8, String> {
    if text.is_empty() {
        return Err("empty day of week".to_owned());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u8>() {
            Ok(day @ 0..=7) => Ok(day),
            _ => Err(format!("day of week `{text}` is not in 0-7")),
        };
    }
    DAY_NAMES
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .and_then(|day| u8::try_from(day).ok())
        .ok_or_else(|| {
            format!("unknown day of week `{text}`, expected 0-7 or one of SUN, MON, .., SAT")
        })
}

/// The step after `/`: 1-7.
fn weekday_step(text: &str) -> Result<u8, String> {
    match text.parse::<u8>() {
        Ok(step @ 1..=7) => Ok(step),
        _ => Err(format!("day-of-week step `{text}` is not in 1-7")),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc, Weekday};

    use super::*;

    /// Sunday 2025-06-01, 12:00 UTC.
    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
            .single()
            .expect("valid time")
    }

    /// The weekdays a five-field schedule fires on in the four weeks after `start`, as crontab's
    /// numbers (0 is Sunday).
    fn fires_on(day_of_week: &str) -> Vec<u32> {
        let text = format!("0 6 * * {day_of_week}");
        let schedule = parse_cron(&text).unwrap_or_else(|err| panic!("{text}: {err}"));
        let end = start() + chrono::TimeDelta::days(28);
        let mut days: Vec<u32> = schedule
            .after(&start())
            .take_while(|at| *at < end)
            .inspect(|at| assert_eq!((at.hour(), at.minute()), (6, 0), "{text}"))
            .map(|at| at.weekday().num_days_from_sunday())
            .collect();
        let fired = days.len();
        days.sort_unstable();
        days.dedup();
        // Each day it fires on, it fires once a week: four times in four weeks.
        assert_eq!(fired, days.len() * 4, "{text}");
        days
    }

    /// Crontab semantics, day by day: 0 and 7 are Sunday, ranges are inclusive, steps count from
    /// the range's first day, names are any case.
    #[test]
    fn five_field_weekdays_fire_on_crontab_days() {
        let cases: &[(&str, &[u32])] = &[
            ("1-5", &[1, 2, 3, 4, 5]),
            ("5-7", &[0, 5, 6]),
            ("0-6", &[0, 1, 2, 3, 4, 5, 6]),
            ("0-7", &[0, 1, 2, 3, 4, 5, 6]),
            ("*", &[0, 1, 2, 3, 4, 5, 6]),
            ("*/2", &[0, 2, 4, 6]),
            ("*/3", &[0, 3, 6]),
            ("1-5/2", &[1, 3, 5]),
            ("2-7/2", &[2, 4, 6]),
            ("6-7/1", &[0, 6]),
            ("1/3", &[0, 1, 4]),
            ("0", &[0]),
            ("7", &[0]),
            ("6", &[6]),
            ("1,3,5", &[1, 3, 5]),
            ("6,0", &[0, 6]),
            ("1-2,4-5", &[1, 2, 4, 5]),
            ("MON-FRI", &[1, 2, 3, 4, 5]),
            ("SAT,SUN", &[0, 6]),
            ("fri-sun", &[0, 5, 6]),
            ("Fri-Sun", &[0, 5, 6]),
            ("5-0", &[0, 5, 6]),
            ("sun-sat", &[0, 1, 2, 3, 4, 5, 6]),
            ("mon-fri/2", &[1, 3, 5]),
            ("mon,wed-thu", &[1, 3, 4]),
            ("Tue", &[2]),
        ];
        let mut failures = Vec::new();
        for (field, expected) in cases {
            let got = fires_on(field);
            if got != *expected {
                failures.push(format!("`{field}`: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn a_sunday_schedule_fires_next_on_sunday() {
        // 2025-06-01 is a Sunday after 06:00: the next Sunday 06:00 is a week later.
        for field in ["0", "7", "SUN", "sun", "7,0", "0/7", "7-7"] {
            let next = parse_cron(&format!("0 6 * * {field}"))
                .ok()
                .and_then(|it| it.after(&start()).next());
            assert_eq!(
                next,
                Utc.with_ymd_and_hms(2025, 6, 8, 6, 0, 0).single(),
                "{field}"
            );
            assert_eq!(next.map(|it| it.weekday()), Some(Weekday::Sun));
        }
    }

    #[test]
    fn bad_weekdays_say_what_is_wrong() {
        let cases = [
            ("8", "day of week `8` is not in 0-7"),
            ("1-8", "day of week `8` is not in 0-7"),
            ("5-2", "day-of-week range `5-2` runs backwards"),
            ("sat-tue", "day-of-week range `sat-tue` runs backwards"),
            ("*/0", "day-of-week step `0` is not in 1-7"),
            ("1-5/9", "day-of-week step `9` is not in 1-7"),
            ("1-5/x", "day-of-week step `x` is not in 1-7"),
            ("funday", "unknown day of week `funday`"),
            ("monday", "unknown day of week `monday`"),
            ("1,,2", "empty day of week"),
            ("1-", "empty day of week"),
            ("-1", "empty day of week"),
            ("L", "unknown day of week `L`"),
        ];
        for (field, expected) in cases {
            let err = parse_cron(&format!("0 6 * * {field}"))
                .err()
                .unwrap_or_default();
            assert!(err.starts_with(expected), "`{field}`: {err}");
        }
    }

    #[test]
    fn other_forms_are_the_cron_crates() {
        for text in [
            "0 0 6 * * MON-FRI",
            "0 0 6 * * Mon-Fri 2025",
            "@daily",
            "@weekly",
        ] {
            assert!(parse_cron(text).is_ok(), "{text}");
        }
        for text in ["0 6 * *", "0 61 * * *", "1 2 3 4 5 6 7 8", "@sometimes"] {
            assert!(parse_cron(text).is_err(), "{text}");
        }
    }
}
