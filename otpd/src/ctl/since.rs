//! `--since`: a duration back from now (`90s`, `30m`, `1h`, `7d`, `2w`) or a UTC date and
//! optional time (`2026-11-01`, `2026-11-01T12:00`, `2026-11-01 12:00:30`).

/// Why a `--since` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--since {0:?} is neither a duration (90s, 30m, 1h, 7d, 2w) nor a UTC date (2026-11-01, 2026-11-01T12:00)"
)]
pub struct BadSince(pub String);

/// The unix time `text` means at `now`.
pub fn parse(text: &str, now: i64) -> Result<i64, BadSince> {
    let bad = || BadSince(text.to_string());
    let text = text.trim();
    if let Some(secs) = duration(text) {
        return Ok(now.saturating_sub(secs));
    }
    date_time(text).ok_or_else(bad)
}

fn duration(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()?.checked_mul(scale)
}

fn date_time(text: &str) -> Option<i64> {
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let year: i64 = number(parts.next()?, 4)?;
    let month: i64 = number(parts.next()?, 2)?;
    let day: i64 = number(parts.next()?, 2)?;
    if parts.next().is_some() || !(1..=12).contains(&month) || day < 1 || day > days_in(year, month)
    {
        return None;
    }
    let secs = match time {
        None => 0,
        Some(t) => {
            let mut fields = t.split(':');
            let h: i64 = number(fields.next()?, 2)?;
            let m: i64 = number(fields.next()?, 2)?;
            let s: i64 = match fields.next() {
                Some(s) => number(s, 2)?,
                None => 0,
            };
            if fields.next().is_some() || h > 23 || m > 59 || s > 59 {
                return None;
            }
            h * 3600 + m * 60 + s
        }
    };
    Some(days_from_civil(year, month, day) * 86_400 + secs)
}

fn number(text: &str, len: usize) -> Option<i64> {
    if text.len() != len || !text.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn days_in(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the well-known era-based conversion).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_351_500; // 2026-11-22 12:45:00 UTC

    #[test]
    fn durations_count_back_from_now() {
        assert_eq!(parse("90s", NOW), Ok(NOW - 90));
        assert_eq!(parse("1h", NOW), Ok(NOW - 3600));
        assert_eq!(parse("7d", NOW), Ok(NOW - 7 * 86_400));
        assert_eq!(parse("2w", NOW), Ok(NOW - 14 * 86_400));
    }

    #[test]
    fn dates_are_utc_midnight_or_the_given_time() {
        assert_eq!(parse("1970-01-01", NOW), Ok(0));
        assert_eq!(parse("2026-11-22T12:45", NOW), Ok(NOW));
        assert_eq!(parse("2026-11-22 12:45:00", NOW), Ok(NOW));
        assert_eq!(parse("2000-02-29", NOW), Ok(951_782_400));
    }

    #[test]
    fn nonsense_is_refused_with_the_accepted_forms() {
        for bad in [
            "",
            "h",
            "1y",
            "-1h",
            "2026-13-01",
            "2026-02-30",
            "2026-11-01T25:00",
            "yesterday",
        ] {
            let e = parse(bad, NOW).unwrap_err();
            assert!(e.to_string().contains("2026-11-01"), "{bad}: {e}");
        }
    }
}
