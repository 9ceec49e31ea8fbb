//! The timestamp and date forms Firehose's JSON deserializers accept (spec §5), as microseconds or
//! days since the Unix epoch, in UTC.
//!
//! OpenX accepts ISO-8601 (`2026-11-23T10:15:30.123Z`, with or without an offset), `yyyy-M-d
//! H:m:s[.fffffffff]`, epoch seconds, epoch milliseconds and float seconds. Hive accepts
//! `java.sql.Timestamp.valueOf`'s form (`yyyy-[m]m-[d]d hh:mm:ss[.f…]`) unless `timestamp_formats`
//! lists Joda patterns or `millis`.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

const MICROS_PER_SECOND: i64 = 1_000_000;
/// Epoch numbers at or above this magnitude are milliseconds: as seconds they would be past the year
/// 5138, as milliseconds they are after March 1973. OpenX tells the two apart the same way, by size.
const MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// The text forms both deserializers share: date, separator (`T` only when `iso` is allowed), time
/// with up to nine fractional digits (kept to the microsecond), and with `iso` an optional `Z` or
/// `±hh[:mm]` offset.
pub fn parse_datetime(s: &str, iso: bool) -> Option<i64> {
    let b = s.trim().as_bytes();
    let mut p = 0;
    let (date, next) = parse_ymd(b)?;
    p += next;
    if p == b.len() {
        return iso.then(|| date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp() * MICROS_PER_SECOND))?;
    }
    match b[p] {
        b' ' => p += 1,
        b'T' if iso => p += 1,
        _ => return None,
    }
    let hour = digits(b, &mut p, 1, 2)?;
    require(b, &mut p, b':')?;
    let minute = digits(b, &mut p, 1, 2)?;
    let second = if p < b.len() && b[p] == b':' {
        p += 1;
        digits(b, &mut p, 1, 2)?
    } else if iso {
        0
    } else {
        return None;
    };
    let mut micros = 0i64;
    if p < b.len() && b[p] == b'.' {
        p += 1;
        let start = p;
        while p < b.len() && b[p].is_ascii_digit() && p - start < 9 {
            if p - start < 6 {
                micros = micros * 10 + i64::from(b[p] - b'0');
            }
            p += 1;
        }
        let n = p - start;
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let mut offset_seconds = 0i64;
    if p < b.len() {
        if !iso {
            return None;
        }
        match b[p] {
            b'Z' | b'z' if p + 1 == b.len() => p += 1,
            sign @ (b'+' | b'-') => {
                p += 1;
                let hh = digits(b, &mut p, 2, 2)?;
                let mm = if p < b.len() {
                    if b[p] == b':' {
                        p += 1;
                    }
                    digits(b, &mut p, 2, 2)?
                } else {
                    0
                };
                if hh > 18 || mm > 59 {
                    return None;
                }
                let off = i64::from(hh * 3600 + mm * 60);
                offset_seconds = if sign == b'+' { off } else { -off };
            }
            _ => return None,
        }
    }
    if p != b.len() {
        return None;
    }
    let t = date.and_hms_opt(hour, minute, second)?.and_utc().timestamp();
    Some((t - offset_seconds) * MICROS_PER_SECOND + micros)
}

/// An epoch number as OpenX reads it: an integer is seconds or, past [`MILLIS_THRESHOLD`],
/// milliseconds; a fraction is seconds.
pub fn from_epoch_number(text: &str) -> Option<i64> {
    if let Ok(n) = text.parse::<i64>() {
        return if n.abs() >= MILLIS_THRESHOLD { n.checked_mul(1000) } else { n.checked_mul(MICROS_PER_SECOND) };
    }
    let f: f64 = text.parse().ok()?;
    let micros = (f * 1e6).round();
    (micros.is_finite() && micros.abs() < 9.2e18).then_some(micros as i64)
}

/// `yyyy-M-d` (four-digit year, one or two-digit month and day), returning the date and the bytes used.
fn parse_ymd(b: &[u8]) -> Option<(NaiveDate, usize)> {
    let mut p = 0;
    let year = digits(b, &mut p, 4, 4)?;
    require(b, &mut p, b'-')?;
    let month = digits(b, &mut p, 1, 2)?;
    require(b, &mut p, b'-')?;
    let day = digits(b, &mut p, 1, 2)?;
    Some((NaiveDate::from_ymd_opt(year as i32, month, day)?, p))
}

/// A date column's text: `yyyy-M-d`, as days since 1970-01-01.
pub fn parse_date(s: &str) -> Option<i32> {
    let b = s.trim().as_bytes();
    let (date, used) = parse_ymd(b)?;
    // Hive's Date.valueOf also takes the date part of a timestamp string.
    if used != b.len() && !matches!(b[used], b' ' | b'T') {
        return None;
    }
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from(date.signed_duration_since(epoch).num_days()).ok()
}

fn digits(b: &[u8], p: &mut usize, min: usize, max: usize) -> Option<u32> {
    let start = *p;
    let mut v = 0u32;
    while *p < b.len() && b[*p].is_ascii_digit() && *p - start < max {
        v = v * 10 + u32::from(b[*p] - b'0');
        *p += 1;
    }
    (*p - start >= min).then_some(v)
}

fn require(b: &[u8], p: &mut usize, ch: u8) -> Option<()> {
    (*p < b.len() && b[*p] == ch).then(|| *p += 1)
}

/// One of Hive's `timestamp_formats`: a Joda-Time pattern, or `millis` for epoch milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub enum HiveTimestampFormat {
    Millis,
    /// `joda` is the pattern as configured (DescribeDeliveryStream echoes it).
    Pattern {
        joda: String,
        chrono: String,
        has_zone: bool,
        has_time: bool,
    },
}

impl HiveTimestampFormat {
    /// Translates a Joda pattern into chrono's `strftime` syntax; letters chrono cannot parse are refused.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if pattern == "millis" {
            return Ok(Self::Millis);
        }
        let chars: Vec<char> = pattern.chars().collect();
        let mut out = String::new();
        let (mut has_zone, mut has_time) = (false, false);
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                // Quoted literal; '' is a quote.
                i += 1;
                if i < chars.len() && chars[i] == '\'' {
                    out.push('\'');
                    i += 1;
                    continue;
                }
                while i < chars.len() && chars[i] != '\'' {
                    push_literal(&mut out, chars[i]);
                    i += 1;
                }
                if i == chars.len() {
                    return Err(format!("unterminated quote in timestamp format `{pattern}`"));
                }
                i += 1;
                continue;
            }
            if !c.is_ascii_alphabetic() {
                if c == '.' && chars.get(i + 1) == Some(&'S') {
                    // `.SSS`: chrono's %.f takes the dot and any number of fraction digits.
                    while chars.get(i + 1) == Some(&'S') {
                        i += 1;
                    }
                    out.push_str("%.f");
                    i += 1;
                    continue;
                }
                push_literal(&mut out, c);
                i += 1;
                continue;
            }
            let mut n = 1;
            while chars.get(i + n) == Some(&c) {
                n += 1;
            }
            let spec = match (c, n) {
                ('y' | 'Y' | 'u', 4) => "%Y",
                ('y' | 'Y' | 'u', 2) => "%y",
                ('M', 1 | 2) => "%m",
                ('M', 3) => "%b",
                ('M', _) => "%B",
                ('d', 1 | 2) => "%d",
                ('D', 1..=3) => "%j",
                ('H', 1 | 2) => "%H",
                ('h', 1 | 2) => "%I",
                ('m', 1 | 2) => "%M",
                ('s', 1 | 2) => "%S",
                ('S', _) => "%f",
                ('a', 1) => "%p",
                ('E', 1..=3) => "%a",
                ('E', _) => "%A",
                ('Z', 1) | ('X', 1 | 2) | ('x', 1 | 2) => "%z",
                ('Z', 2) | ('X', 3) | ('x', 3) => "%:z",
                _ => {
                    return Err(format!("timestamp format `{pattern}`: `{}` is not supported", c.to_string().repeat(n)))
                }
            };
            has_zone |= matches!(c, 'Z' | 'X' | 'x');
            has_time |= matches!(c, 'H' | 'h' | 'm' | 's');
            out.push_str(spec);
            i += n;
        }
        Ok(Self::Pattern { joda: pattern.to_string(), chrono: out, has_zone, has_time })
    }

    /// The format as configured.
    pub fn as_configured(&self) -> &str {
        match self {
            Self::Millis => "millis",
            Self::Pattern { joda, .. } => joda,
        }
    }

    pub fn parse_value(&self, text: &str) -> Option<i64> {
        match self {
            Self::Millis => text.trim().parse::<i64>().ok()?.checked_mul(1000),
            Self::Pattern { chrono, has_zone, has_time, .. } => {
                let text = text.trim();
                if *has_zone {
                    let t = DateTime::parse_from_str(text, chrono).ok()?;
                    Some(t.timestamp() * MICROS_PER_SECOND + i64::from(t.timestamp_subsec_micros()))
                } else if *has_time {
                    let t = NaiveDateTime::parse_from_str(text, chrono).ok()?.and_utc();
                    Some(t.timestamp() * MICROS_PER_SECOND + i64::from(t.timestamp_subsec_micros()))
                } else {
                    let d = NaiveDate::parse_from_str(text, chrono).ok()?;
                    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp() * MICROS_PER_SECOND)
                }
            }
        }
    }
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn openx_forms() {
        assert_eq!(parse_datetime("2026-11-23T10:15:30Z", true), Some(us("2026-11-23T10:15:30Z")));
        assert_eq!(
            parse_datetime("2026-11-23T10:15:30.123456789+02:00", true),
            Some(us("2026-11-23T08:15:30.123456Z"))
        );
        assert_eq!(parse_datetime("2026-11-23T10:15:30-0130", true), Some(us("2026-11-23T11:45:30Z")));
        assert_eq!(parse_datetime("2026-1-2 3:04:05.5", true), Some(us("2026-01-02T03:04:05.5Z")));
        assert_eq!(parse_datetime("0001-01-01 00:00:00", true), Some(us("0001-01-01T00:00:00Z")));
        assert_eq!(parse_datetime("9999-12-31 23:59:59.999999", true), Some(us("9999-12-31T23:59:59.999999Z")));
        assert_eq!(parse_datetime("2026-11-23", true), Some(us("2026-11-23T00:00:00Z")));
        for bad in
            ["2026-13-01 00:00:00", "2026-11-23T10:15:30Zjunk", "26-11-23 00:00:00", "2026-11-23 10", "yesterday", ""]
        {
            assert_eq!(parse_datetime(bad, true), None, "{bad}");
        }
        assert_eq!(from_epoch_number("1700000000"), Some(1_700_000_000_000_000));
        assert_eq!(from_epoch_number("1700000000123"), Some(1_700_000_000_123_000));
        assert_eq!(from_epoch_number("1700000000.25"), Some(1_700_000_000_250_000));
        assert_eq!(from_epoch_number("-1"), Some(-1_000_000));
    }

    #[test]
    fn hive_default_is_strict() {
        assert_eq!(parse_datetime("2026-11-23 10:15:30.1", false), Some(us("2026-11-23T10:15:30.1Z")));
        assert_eq!(parse_datetime("2026-11-23T10:15:30Z", false), None);
        assert_eq!(parse_datetime("2026-11-23", false), None);
    }

    #[test]
    fn joda_patterns_translate() {
        let f = HiveTimestampFormat::parse("yyyy-MM-dd'T'HH:mm:ss.SSSZZ").unwrap();
        assert_eq!(f.parse_value("2026-11-23T10:15:30.250+01:00"), Some(us("2026-11-23T09:15:30.25Z")));
        let f = HiveTimestampFormat::parse("dd/MM/yyyy HH:mm").unwrap();
        assert_eq!(f.parse_value("23/11/2026 10:15"), Some(us("2026-11-23T10:15:00Z")));
        assert_eq!(HiveTimestampFormat::parse("millis").unwrap().parse_value("1500"), Some(1_500_000));
        assert!(HiveTimestampFormat::parse("yyyy-MM-dd G").unwrap_err().contains("`G`"));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("2026-11-23 10:00:00"), Some(20780));
        assert_eq!(parse_date("2026-02-30"), None);
    }
}
