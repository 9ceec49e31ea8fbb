//! Index names with Firehose's rotation (spec §8): `myindex`, `myindex-2016-02-25-13`,
//! `myindex-2016-02-25`, `myindex-2016-w08`, `myindex-2016-02`, in UTC, from the record's arrival
//! time (so a retry or a replay writes the document to the same index).
//!
//! Weeks start on Sunday, as the spec says. Its example puts 2016-02-25 in week 08 of 2016, which
//! is the week numbering where week 1 is the first Sunday-to-Saturday week with at least four days
//! in the year (a year's first days before it belong to the last week of the year before); that
//! is what this implements.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

pub use super::config::Rotation;

impl Rotation {
    /// The index a document arriving at `arrival_ms` goes to.
    pub fn index(self, base: &str, arrival_ms: i64) -> String {
        let t: DateTime<Utc> = DateTime::from_timestamp_millis(arrival_ms).unwrap_or_default();
        match self {
            Rotation::NoRotation => base.to_string(),
            Rotation::OneHour => format!("{base}-{}", t.format("%Y-%m-%d-%H")),
            Rotation::OneDay => format!("{base}-{}", t.format("%Y-%m-%d")),
            Rotation::OneMonth => format!("{base}-{}", t.format("%Y-%m")),
            Rotation::OneWeek => {
                let (year, week) = sunday_week(t.date_naive());
                format!("{base}-{year}-w{week:02}")
            }
        }
    }
}

/// (week-based year, week) with Sunday-start weeks and week 1 the first with four days in the year.
fn sunday_week(date: NaiveDate) -> (i32, u32) {
    let week_one_start = |year: i32| {
        let jan1 = NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or_default();
        let back = jan1.weekday().num_days_from_sunday() as i64; // to the Sunday on or before Jan 1
        let sunday = jan1 - Duration::days(back);
        // That week has 7 - back days in the year; it is week 1 if they are at least four.
        if 7 - back >= 4 {
            sunday
        } else {
            sunday + Duration::days(7)
        }
    };
    let mut year = date.year();
    if date < week_one_start(year) {
        year -= 1;
    } else if date >= week_one_start(year + 1) {
        year += 1;
    }
    let week = (date - week_one_start(year)).num_days() / 7 + 1;
    (year, week as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn the_spec_table() {
        let t = at("2016-02-25T13:00:00Z");
        assert_eq!(Rotation::NoRotation.index("myindex", t), "myindex");
        assert_eq!(Rotation::OneHour.index("myindex", t), "myindex-2016-02-25-13");
        assert_eq!(Rotation::OneDay.index("myindex", t), "myindex-2016-02-25");
        assert_eq!(Rotation::OneWeek.index("myindex", t), "myindex-2016-w08");
        assert_eq!(Rotation::OneMonth.index("myindex", t), "myindex-2016-02");
    }

    #[test]
    fn weeks_turn_on_sunday_and_across_years() {
        // 2016-02-20 is a Saturday, 02-21 a Sunday.
        assert_eq!(Rotation::OneWeek.index("i", at("2016-02-20T23:59:59Z")), "i-2016-w07");
        assert_eq!(Rotation::OneWeek.index("i", at("2016-02-21T00:00:00Z")), "i-2016-w08");
        // 2016-01-01 is a Friday: its week has two days in 2016, so it is the last week of 2015.
        assert_eq!(Rotation::OneWeek.index("i", at("2016-01-01T00:00:00Z")), "i-2015-w52");
        assert_eq!(Rotation::OneWeek.index("i", at("2016-01-03T00:00:00Z")), "i-2016-w01");
        // 2015-01-01 is a Thursday: the week from Sunday 2014-12-28 has three days in 2015, so it
        // is week 53 of 2014, and week 1 of 2015 starts on Sunday 2015-01-04.
        assert_eq!(Rotation::OneWeek.index("i", at("2015-01-01T12:00:00Z")), "i-2014-w53");
        assert_eq!(Rotation::OneWeek.index("i", at("2015-01-04T00:00:00Z")), "i-2015-w01");
    }
}
