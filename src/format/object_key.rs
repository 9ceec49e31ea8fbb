//! Firehose object naming: prefix expressions and the object name that follows them.
//!
//! Key = `<evaluated prefix><stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><ext>` (spec §4). Unlike
//! Firehose, everything random in a key is derived from the batch's identity (its first sequence
//! number, or the stream positions of its records for a Kinesis source: `Batch::identity`), so a
//! batch re-delivered after a crash lands on the same key and overwrites instead of duplicating.

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use thiserror::Error;

/// Firehose's limit on a raw prefix.
pub const MAX_PREFIX_CHARS: usize = 1024;
/// Firehose's limit on an evaluated prefix.
pub const MAX_EVALUATED_PREFIX_CHARS: usize = 512;
/// The time path Firehose appends when a prefix has no expressions (`YYYY/MM/dd/HH/`, UTC).
pub const DEFAULT_TIME_PATH: &str = "!{timestamp:yyyy/MM/dd/HH}/";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("`!{{` at character {0} does not start a valid expression: expected `!{{namespace:value}}`")]
    Unterminated(usize),
    #[error("unknown expression `!{{{0}}}`: expected timestamp, firehose:random-string, firehose:error-output-type, partitionKeyFromQuery or partitionKeyFromLambda")]
    UnknownExpression(String),
    #[error("invalid timestamp pattern `{pattern}`: {reason}")]
    BadTimestamp { pattern: String, reason: String },
    #[error("is {0} characters long; Firehose allows at most 1024")]
    TooLong(usize),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("partition key `{0}` has no value for this record")]
    MissingPartitionKey(String),
    #[error("evaluated prefix is {0} characters long; at most 512 are allowed")]
    TooLong(usize),
}

/// One piece of a Java `DateTimeFormatter` pattern, the subset Firehose users write.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TimeToken {
    Literal(String),
    Year(usize),
    Month(usize),
    Day(usize),
    DayOfYear(usize),
    Hour(usize),
    Minute(usize),
    Second(usize),
    Fraction(usize),
    WeekdayName(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionSource {
    Query,
    Lambda,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Timestamp(Vec<TimeToken>),
    RandomString,
    ErrorOutputType,
    PartitionKey(PartitionSource, String),
}

/// A parsed prefix such as `logs/!{timestamp:yyyy/MM/dd}/!{firehose:random-string}/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTemplate {
    raw: String,
    segments: Vec<Segment>,
}

/// What a template is evaluated against: the object being written.
pub struct RenderContext<'a> {
    /// Arrival time of the oldest record in the object (Firehose uses this for every timestamp).
    pub oldest_arrival_ms: i64,
    pub error_output_type: Option<&'a str>,
    /// Looks up `!{partitionKeyFromQuery:k}` / `!{partitionKeyFromLambda:k}` values.
    pub partition_key: &'a dyn Fn(&PartitionSource, &str) -> Option<String>,
    /// Seeds `!{firehose:random-string}` so that the same object always gets the same key.
    pub seed: u64,
}

impl KeyTemplate {
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        let chars = raw.chars().count();
        if chars > MAX_PREFIX_CHARS {
            return Err(TemplateError::TooLong(chars));
        }
        let mut segments = Vec::new();
        let mut rest = raw;
        let mut offset = 0;
        while let Some(start) = rest.find("!{") {
            if start > 0 {
                segments.push(Segment::Literal(rest[..start].to_string()));
            }
            let body_start = start + 2;
            let end = rest[body_start..].find('}').ok_or(TemplateError::Unterminated(offset + start))?;
            let body = &rest[body_start..body_start + end];
            segments.push(parse_expression(body)?);
            offset += body_start + end + 1;
            rest = &rest[body_start + end + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_string()));
        }
        Ok(Self { raw: raw.to_string(), segments })
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn has_expressions(&self) -> bool {
        self.segments.iter().any(|s| !matches!(s, Segment::Literal(_)))
    }

    pub fn has_error_output_type(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::ErrorOutputType))
    }

    /// Partition keys the template needs, in order of appearance.
    pub fn partition_keys(&self) -> impl Iterator<Item = (&PartitionSource, &str)> {
        self.segments.iter().filter_map(|s| match s {
            Segment::PartitionKey(src, k) => Some((src, k.as_str())),
            _ => None,
        })
    }

    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<String, RenderError> {
        let time = utc(ctx.oldest_arrival_ms);
        let mut out = String::with_capacity(self.raw.len() + 16);
        let mut random_count = 0u64;
        for segment in &self.segments {
            match segment {
                Segment::Literal(s) => out.push_str(s),
                Segment::Timestamp(tokens) => format_time(&time, tokens, &mut out),
                Segment::RandomString => {
                    random_count += 1;
                    out.push_str(&random_string(ctx.seed, random_count));
                }
                Segment::ErrorOutputType => out.push_str(ctx.error_output_type.unwrap_or("")),
                Segment::PartitionKey(src, key) => match (ctx.partition_key)(src, key) {
                    Some(value) => out.push_str(&value),
                    None => return Err(RenderError::MissingPartitionKey(key.clone())),
                },
            }
        }
        let len = out.chars().count();
        if len > MAX_EVALUATED_PREFIX_CHARS {
            return Err(RenderError::TooLong(len));
        }
        Ok(out)
    }
}

fn parse_expression(body: &str) -> Result<Segment, TemplateError> {
    let unknown = || TemplateError::UnknownExpression(body.to_string());
    let (namespace, value) = body.split_once(':').ok_or_else(unknown)?;
    match namespace {
        "timestamp" => Ok(Segment::Timestamp(parse_time_pattern(value)?)),
        "firehose" => match value {
            "random-string" => Ok(Segment::RandomString),
            "error-output-type" => Ok(Segment::ErrorOutputType),
            _ => Err(unknown()),
        },
        "partitionKeyFromQuery" if !value.is_empty() => {
            Ok(Segment::PartitionKey(PartitionSource::Query, value.to_string()))
        }
        "partitionKeyFromLambda" if !value.is_empty() => {
            Ok(Segment::PartitionKey(PartitionSource::Lambda, value.to_string()))
        }
        _ => Err(unknown()),
    }
}

/// Parses the subset of `java.time.format.DateTimeFormatter` patterns used in Firehose prefixes.
/// Letters are pattern letters, text in single quotes is literal, `''` is a quote.
fn parse_time_pattern(pattern: &str) -> Result<Vec<TimeToken>, TemplateError> {
    let bad = |reason: String| TemplateError::BadTimestamp { pattern: pattern.to_string(), reason };
    if pattern.is_empty() {
        return Err(bad("the pattern is empty".into()));
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                literal.push('\'');
                i += 2;
                continue;
            }
            let close = chars[i + 1..]
                .iter()
                .position(|&q| q == '\'')
                .ok_or_else(|| bad("unterminated quoted literal".into()))?;
            literal.extend(&chars[i + 1..i + 1 + close]);
            i += close + 2;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            literal.push(c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        if !literal.is_empty() {
            tokens.push(TimeToken::Literal(std::mem::take(&mut literal)));
        }
        let token = match (c, run) {
            ('y' | 'u', n) => TimeToken::Year(n),
            ('M', 1..=4) => TimeToken::Month(run),
            ('d', 1..=2) => TimeToken::Day(run),
            ('D', 1..=3) => TimeToken::DayOfYear(run),
            ('H', 1..=2) => TimeToken::Hour(run),
            ('m', 1..=2) => TimeToken::Minute(run),
            ('s', 1..=2) => TimeToken::Second(run),
            ('S', 1..=9) => TimeToken::Fraction(run),
            ('E', 1..=4) => TimeToken::WeekdayName(run),
            _ => return Err(bad(format!("pattern letters `{}` are not supported", c.to_string().repeat(run)))),
        };
        tokens.push(token);
        i += run;
    }
    if !literal.is_empty() {
        tokens.push(TimeToken::Literal(literal));
    }
    Ok(tokens)
}

pub fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn pad(out: &mut String, value: u32, width: usize) {
    use std::fmt::Write;
    let _ = write!(out, "{value:0width$}");
}

fn format_time(t: &DateTime<Utc>, tokens: &[TimeToken], out: &mut String) {
    use std::fmt::Write;
    for token in tokens {
        match token {
            TimeToken::Literal(s) => out.push_str(s),
            TimeToken::Year(2) => pad(out, (t.year().rem_euclid(100)) as u32, 2),
            TimeToken::Year(n) => {
                let _ = write!(out, "{:0width$}", t.year(), width = *n);
            }
            TimeToken::Month(3) => out.push_str(&t.format("%b").to_string()),
            TimeToken::Month(4) => out.push_str(&t.format("%B").to_string()),
            TimeToken::Month(n) => pad(out, t.month(), *n),
            TimeToken::Day(n) => pad(out, t.day(), *n),
            TimeToken::DayOfYear(n) => pad(out, t.ordinal(), *n),
            TimeToken::Hour(n) => pad(out, t.hour(), *n),
            TimeToken::Minute(n) => pad(out, t.minute(), *n),
            TimeToken::Second(n) => pad(out, t.second(), *n),
            TimeToken::Fraction(n) => {
                let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                out.push_str(&nanos[..*n]);
            }
            TimeToken::WeekdayName(4) => out.push_str(&t.format("%A").to_string()),
            TimeToken::WeekdayName(_) => out.push_str(&t.format("%a").to_string()),
        }
    }
}

pub use crate::hash::{fnv1a, splitmix64};

/// Firehose's 11-character random string, derived from the object's seed.
fn random_string(seed: u64, occurrence: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = splitmix64(seed ^ occurrence.wrapping_mul(0xA24B_AED4_963E_E407));
    (0..11)
        .map(|_| {
            state = splitmix64(state);
            ALPHABET[(state % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// The object name after the prefix: `<stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><ext>`.
/// The uuid comes from the batch's names (`buffer::names`): unique per object and state directory,
/// identical on re-delivery.
pub fn object_name(stream: &str, version: u32, oldest_arrival_ms: i64, id: uuid::Uuid, ext: &str) -> String {
    let t = utc(oldest_arrival_ms);
    format!("{stream}-{version}-{}-{id}{ext}", t.format("%Y-%m-%d-%H-%M-%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_keys(_: &PartitionSource, _: &str) -> Option<String> {
        None
    }

    fn render(raw: &str, ms: i64) -> String {
        let ctx = RenderContext {
            oldest_arrival_ms: ms,
            error_output_type: Some("processing-failed"),
            partition_key: &no_keys,
            seed: 7,
        };
        KeyTemplate::parse(raw).unwrap().render(&ctx).unwrap()
    }

    // 2026-07-13T14:05:09.123Z
    const T: i64 = 1_783_951_509_123;

    #[test]
    fn renders_timestamp_patterns_with_literals() {
        assert_eq!(render(DEFAULT_TIME_PATH, T), "2026/07/13/14/");
        assert_eq!(render("logs/!{timestamp:yyyy-MM-dd}/", T), "logs/2026-07-13/");
        assert_eq!(render("!{timestamp:'year='yyyy'/month='MM}/", T), "year=2026/month=07/");
        assert_eq!(render("!{timestamp:yy.M.d H:m:s.SSS}", T), "26.7.13 14:5:9.123");
        assert_eq!(render("!{timestamp:''HH''}", T), "'14'");
    }

    #[test]
    fn random_string_is_eleven_chars_fresh_per_occurrence_and_stable() {
        let a = render("!{firehose:random-string}/!{firehose:random-string}", T);
        let (x, y) = a.split_once('/').unwrap();
        assert_eq!(x.len(), 11);
        assert_eq!(y.len(), 11);
        assert_ne!(x, y);
        assert_eq!(a, render("!{firehose:random-string}/!{firehose:random-string}", T));
    }

    #[test]
    fn rejects_malformed_expressions() {
        assert!(matches!(KeyTemplate::parse("a/!{timestamp:yyyy"), Err(TemplateError::Unterminated(2))));
        assert!(matches!(KeyTemplate::parse("!{nope:x}"), Err(TemplateError::UnknownExpression(_))));
        assert!(matches!(KeyTemplate::parse("!{firehose:bogus}"), Err(TemplateError::UnknownExpression(_))));
        assert!(matches!(KeyTemplate::parse("!{timestamp:yyyy-QQ}"), Err(TemplateError::BadTimestamp { .. })));
        assert!(matches!(KeyTemplate::parse("!{timestamp:'open}"), Err(TemplateError::BadTimestamp { .. })));
        assert!(matches!(KeyTemplate::parse(&"a".repeat(1025)), Err(TemplateError::TooLong(1025))));
    }

    #[test]
    fn partition_keys_must_have_values() {
        let t = KeyTemplate::parse("c=!{partitionKeyFromQuery:customer}/").unwrap();
        let keys = |_: &PartitionSource, k: &str| (k == "customer").then(|| "42".to_string());
        let ctx = RenderContext { oldest_arrival_ms: T, error_output_type: None, partition_key: &keys, seed: 0 };
        assert_eq!(t.render(&ctx).unwrap(), "c=42/");
        let ctx = RenderContext { oldest_arrival_ms: T, error_output_type: None, partition_key: &no_keys, seed: 0 };
        assert_eq!(t.render(&ctx), Err(RenderError::MissingPartitionKey("customer".into())));
    }

    #[test]
    fn object_name_matches_firehose_shape_and_is_deterministic() {
        let id = |n: u128| uuid::Uuid::from_u128(n);
        let name = object_name("clicks", 1, T, id(1234), ".gz");
        assert!(name.starts_with("clicks-1-2026-07-13-14-05-09-"), "{name}");
        assert!(name.ends_with(".gz"));
        let uuid_part = &name["clicks-1-2026-07-13-14-05-09-".len()..name.len() - 3];
        assert!(uuid::Uuid::parse_str(uuid_part).is_ok(), "{uuid_part}");
        assert_eq!(name, object_name("clicks", 1, T, id(1234), ".gz"));
        assert_ne!(name, object_name("clicks", 1, T, id(1235), ".gz"));
    }
}
