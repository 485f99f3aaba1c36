//! Durations as people write them (`90d`, `12h`, `2w`, `1d 12h`), bounded so that adding one to a
//! time can never overflow.
//!
//! Every duration keywarden reads from a user (policy thresholds, source settings, command-line
//! flags) goes through [`parse_duration`] or [`check_duration`]: at most [`MAX_DURATION`].

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The longest duration accepted anywhere: 100 years of 365.25 days.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// The text [`MAX_DURATION`] is described as in errors.
pub const MAX_DURATION_TEXT: &str = "100 years";

/// Why a duration is not accepted. The message does not repeat the text: callers name the field
/// or flag and the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all (`ninety days`, `90x`) or a number too large to read.
    #[error("{0}")]
    Syntax(String),
    /// Longer than [`MAX_DURATION`].
    #[error("longer than {MAX_DURATION_TEXT}, the longest duration accepted")]
    TooLong,
}

/// Parses a duration with [`humantime`] (`90d`, `12h`, `2w`, `30m`, `1d 12h`; a month is 30.44
/// days, a year 365.25 days) and checks it against [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|err| DurationError::Syntax(err.to_string()))?;
    check_duration(duration)
}

/// Checks an already decoded duration (e.g. by `humantime_serde`) against [`MAX_DURATION`].
pub fn check_duration(duration: Duration) -> Result<Duration, DurationError> {
    if duration > MAX_DURATION {
        Err(DurationError::TooLong)
    } else {
        Ok(duration)
    }
}

/// A checked duration as a [`TimeDelta`]; `TooLong` past [`MAX_DURATION`].
pub fn time_delta(duration: Duration) -> Result<TimeDelta, DurationError> {
    let duration = check_duration(duration)?;
    TimeDelta::from_std(duration).map_err(|_| DurationError::TooLong)
}

/// `at + duration`, or `None` when the result would not be a valid time.
pub fn checked_add(at: DateTime<Utc>, duration: Duration) -> Option<DateTime<Utc>> {
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_up_to_a_hundred_years_are_accepted() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(
            parse_duration(" 1d 12h "),
            Ok(Duration::from_secs(36 * 3_600))
        );
        assert_eq!(parse_duration("100y"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("36525d"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("36525d 1s"), Err(DurationError::TooLong));
        assert_eq!(parse_duration("101y"), Err(DurationError::TooLong));
        assert_eq!(parse_duration("300000y"), Err(DurationError::TooLong));
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("soon"),
            Err(DurationError::Syntax(_))
        ));
        assert_eq!(
            DurationError::TooLong.to_string(),
            "longer than 100 years, the longest duration accepted"
        );
    }

    #[test]
    fn conversions_and_additions_are_checked() {
        assert_eq!(time_delta(MAX_DURATION), Ok(TimeDelta::days(36_525)));
        assert_eq!(
            time_delta(Duration::from_secs(u64::MAX)),
            Err(DurationError::TooLong)
        );
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        assert_eq!(
            checked_add(now, Duration::from_secs(60)),
            DateTime::from_timestamp(1_800_000_060, 0)
        );
        assert_eq!(checked_add(now, Duration::from_secs(u64::MAX)), None);
        assert_eq!(
            checked_add(DateTime::<Utc>::MAX_UTC, Duration::from_secs(1)),
            None
        );
    }
}
