//! Column statistics as ORC readers use them for pruning: counts and nulls for every column,
//! min/max (and sums where ORC defines them) per type, kept per stripe and merged for the file.

use orc_rust::proto;

#[derive(Clone, Debug, Default)]
pub struct Stats {
    values: u64,
    has_null: bool,
    kind: Kind,
}

#[derive(Clone, Debug, Default)]
enum Kind {
    #[default]
    Plain,
    Int {
        min: i64,
        max: i64,
        sum: Option<i64>,
    },
    Double {
        min: f64,
        max: f64,
        sum: f64,
    },
    Str {
        min: Vec<u8>,
        max: Vec<u8>,
        sum: i64,
    },
    Binary {
        sum: i64,
    },
    Bool {
        trues: u64,
    },
    Date {
        min: i32,
        max: i32,
    },
    /// Microseconds since the epoch, UTC.
    Timestamp {
        min: i64,
        max: i64,
    },
    Decimal {
        min: i128,
        max: i128,
        sum: Option<i128>,
        scale: u8,
    },
    Collection {
        min: u64,
        max: u64,
        total: u64,
    },
}

impl Stats {
    pub fn add_values(&mut self, n: u64) {
        self.values += n;
    }

    pub fn add_null(&mut self) {
        self.has_null = true;
    }

    /// Whether this is the first value of a typed statistic (min/max not yet set).
    fn first(&self) -> bool {
        matches!(self.kind, Kind::Plain)
    }

    pub fn int(&mut self, v: i64) {
        self.values += 1;
        match &mut self.kind {
            Kind::Int { min, max, sum } => {
                *min = (*min).min(v);
                *max = (*max).max(v);
                *sum = sum.and_then(|s| s.checked_add(v));
            }
            _ => self.kind = Kind::Int { min: v, max: v, sum: Some(v) },
        }
    }

    pub fn double(&mut self, v: f64) {
        self.values += 1;
        if v.is_nan() {
            return;
        }
        match &mut self.kind {
            Kind::Double { min, max, sum } => {
                *min = min.min(v);
                *max = max.max(v);
                *sum += v;
            }
            _ => self.kind = Kind::Double { min: v, max: v, sum: v },
        }
    }

    pub fn string(&mut self, v: &[u8]) {
        self.values += 1;
        match &mut self.kind {
            Kind::Str { min, max, sum } => {
                if v < min.as_slice() {
                    *min = v.to_vec();
                }
                if v > max.as_slice() {
                    *max = v.to_vec();
                }
                *sum += v.len() as i64;
            }
            _ => self.kind = Kind::Str { min: v.to_vec(), max: v.to_vec(), sum: v.len() as i64 },
        }
    }

    pub fn binary(&mut self, len: usize) {
        self.values += 1;
        match &mut self.kind {
            Kind::Binary { sum } => *sum += len as i64,
            _ => self.kind = Kind::Binary { sum: len as i64 },
        }
    }

    pub fn boolean(&mut self, v: bool) {
        self.values += 1;
        match &mut self.kind {
            Kind::Bool { trues } => *trues += u64::from(v),
            _ => self.kind = Kind::Bool { trues: u64::from(v) },
        }
    }

    pub fn date(&mut self, v: i32) {
        self.values += 1;
        match &mut self.kind {
            Kind::Date { min, max } => {
                *min = (*min).min(v);
                *max = (*max).max(v);
            }
            _ => self.kind = Kind::Date { min: v, max: v },
        }
    }

    pub fn timestamp(&mut self, micros: i64) {
        self.values += 1;
        match &mut self.kind {
            Kind::Timestamp { min, max } => {
                *min = (*min).min(micros);
                *max = (*max).max(micros);
            }
            _ => self.kind = Kind::Timestamp { min: micros, max: micros },
        }
    }

    pub fn decimal(&mut self, v: i128, scale: u8) {
        self.values += 1;
        match &mut self.kind {
            Kind::Decimal { min, max, sum, .. } => {
                *min = (*min).min(v);
                *max = (*max).max(v);
                *sum = sum.and_then(|s| s.checked_add(v));
            }
            _ => self.kind = Kind::Decimal { min: v, max: v, sum: Some(v), scale },
        }
    }

    pub fn collection(&mut self, children: u64) {
        self.values += 1;
        match &mut self.kind {
            Kind::Collection { min, max, total } => {
                *min = (*min).min(children);
                *max = (*max).max(children);
                *total += children;
            }
            _ => self.kind = Kind::Collection { min: children, max: children, total: children },
        }
    }

    /// Folds a stripe's statistics into the file's.
    pub fn merge(&mut self, other: &Stats) {
        self.values += other.values;
        self.has_null |= other.has_null;
        if self.first() {
            self.kind = other.kind.clone();
            return;
        }
        match (&mut self.kind, &other.kind) {
            (Kind::Int { min, max, sum }, Kind::Int { min: m, max: x, sum: s }) => {
                *min = (*min).min(*m);
                *max = (*max).max(*x);
                *sum = sum.zip(*s).and_then(|(a, b)| a.checked_add(b));
            }
            (Kind::Double { min, max, sum }, Kind::Double { min: m, max: x, sum: s }) => {
                *min = min.min(*m);
                *max = max.max(*x);
                *sum += s;
            }
            (Kind::Str { min, max, sum }, Kind::Str { min: m, max: x, sum: s }) => {
                if m < min {
                    *min = m.clone();
                }
                if x > max {
                    *max = x.clone();
                }
                *sum += s;
            }
            (Kind::Binary { sum }, Kind::Binary { sum: s }) => *sum += s,
            (Kind::Bool { trues }, Kind::Bool { trues: t }) => *trues += t,
            (Kind::Date { min, max }, Kind::Date { min: m, max: x }) => {
                *min = (*min).min(*m);
                *max = (*max).max(*x);
            }
            (Kind::Timestamp { min, max }, Kind::Timestamp { min: m, max: x }) => {
                *min = (*min).min(*m);
                *max = (*max).max(*x);
            }
            (Kind::Decimal { min, max, sum, .. }, Kind::Decimal { min: m, max: x, sum: s, .. }) => {
                *min = (*min).min(*m);
                *max = (*max).max(*x);
                *sum = sum.zip(*s).and_then(|(a, b)| a.checked_add(b));
            }
            (Kind::Collection { min, max, total }, Kind::Collection { min: m, max: x, total: t }) => {
                *min = (*min).min(*m);
                *max = (*max).max(*x);
                *total += t;
            }
            _ => {}
        }
    }

    pub fn to_proto(&self) -> proto::ColumnStatistics {
        let mut s = proto::ColumnStatistics {
            number_of_values: Some(self.values),
            has_null: Some(self.has_null),
            ..Default::default()
        };
        match &self.kind {
            Kind::Plain => {}
            Kind::Int { min, max, sum } => {
                s.int_statistics =
                    Some(proto::IntegerStatistics { minimum: Some(*min), maximum: Some(*max), sum: *sum })
            }
            Kind::Double { min, max, sum } => {
                s.double_statistics =
                    Some(proto::DoubleStatistics { minimum: Some(*min), maximum: Some(*max), sum: Some(*sum) })
            }
            Kind::Str { min, max, sum } => {
                s.string_statistics = Some(proto::StringStatistics {
                    minimum: Some(String::from_utf8_lossy(min).into_owned()),
                    maximum: Some(String::from_utf8_lossy(max).into_owned()),
                    sum: Some(*sum),
                    ..Default::default()
                })
            }
            Kind::Binary { sum } => s.binary_statistics = Some(proto::BinaryStatistics { sum: Some(*sum) }),
            Kind::Bool { trues } => s.bucket_statistics = Some(proto::BucketStatistics { count: vec![*trues] }),
            Kind::Date { min, max } => {
                s.date_statistics = Some(proto::DateStatistics { minimum: Some(*min), maximum: Some(*max) })
            }
            Kind::Timestamp { min, max } => {
                // Milliseconds, with the sub-millisecond rest in the `*_nanos` fields (stored + 1,
                // 0 meaning absent), so a reader never prunes a stripe holding a matching value.
                let (min_ms, min_ns) = split_millis(*min);
                let (max_ms, max_ns) = split_millis(*max);
                s.timestamp_statistics = Some(proto::TimestampStatistics {
                    minimum: Some(min_ms),
                    maximum: Some(max_ms),
                    minimum_utc: Some(min_ms),
                    maximum_utc: Some(max_ms),
                    minimum_nanos: Some(min_ns + 1),
                    maximum_nanos: Some(max_ns + 1),
                })
            }
            Kind::Decimal { min, max, sum, scale } => {
                s.decimal_statistics = Some(proto::DecimalStatistics {
                    minimum: Some(decimal_text(*min, *scale)),
                    maximum: Some(decimal_text(*max, *scale)),
                    sum: sum.map(|v| decimal_text(v, *scale)),
                })
            }
            Kind::Collection { min, max, total } => {
                s.collection_statistics = Some(proto::CollectionStatistics {
                    min_children: Some(*min),
                    max_children: Some(*max),
                    total_children: Some(*total),
                })
            }
        }
        s
    }
}

fn split_millis(micros: i64) -> (i64, i32) {
    (micros.div_euclid(1000), (micros.rem_euclid(1000) * 1000) as i32)
}

/// A decimal's text form (`-12.50`), as ORC's decimal statistics hold it.
pub fn decimal_text(unscaled: i128, scale: u8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_places_the_point() {
        assert_eq!(decimal_text(-1250, 2), "-12.50");
        assert_eq!(decimal_text(5, 3), "0.005");
        assert_eq!(decimal_text(7, 0), "7");
    }

    #[test]
    fn merging_stripes_keeps_extremes() {
        let (mut a, mut b) = (Stats::default(), Stats::default());
        a.int(5);
        b.int(-3);
        b.add_null();
        let mut file = Stats::default();
        file.merge(&a);
        file.merge(&b);
        let p = file.to_proto();
        assert_eq!(p.number_of_values, Some(2));
        assert_eq!(p.has_null, Some(true));
        let i = p.int_statistics.unwrap();
        assert_eq!((i.minimum, i.maximum, i.sum), (Some(-3), Some(5), Some(2)));
    }
}
