//! `destination: postgres:` as written, its validated form, and the rules between them. A
//! config-layer module: it imports only the config kit, so `config` can list it.

use std::time::Duration;

use serde::Deserialize;

use crate::config::kit::{choose, retry_duration, Checker, RawDestination, Secret, Spanned};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    /// `postgres://user:password@host:port/db?sslmode=...` (`${VAR}` for the password).
    pub url: Spanned<String>,
    /// The table, optionally schema-qualified.
    pub table: Spanned<String>,
    /// Columns taken from each JSON record by name...
    pub columns: Option<Spanned<Vec<String>>>,
    /// ...or the whole record into this json/jsonb column.
    pub jsonb_column: Option<Spanned<String>>,
    pub retry_duration_seconds: Option<Spanned<u64>>,
    /// FailedDataOnly | AllData
    pub s3_backup_mode: Option<Spanned<String>>,
    pub backup: Spanned<RawDestination>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PostgresSpec {
    pub url: Secret,
    pub table: String,
    /// Empty with `jsonb_column`.
    pub columns: Vec<String>,
    pub jsonb_column: Option<String>,
    pub retry_duration: Duration,
    pub backup_all: bool,
}

pub fn validate(c: &mut Checker, p: &RawPostgres, field: &str) -> Option<PostgresSpec> {
    let before = c.error_count();
    if !(p.url.value.starts_with("postgres://") || p.url.value.starts_with("postgresql://")) {
        c.at(&p.url, &format!("{field}.url"), "must be a postgres:// URL");
    } else if let Err(e) = p.url.value.parse::<tokio_postgres::Config>() {
        // tokio-postgres' message never repeats the URL, so no password reaches the error.
        c.at(&p.url, &format!("{field}.url"), format!("is not a PostgreSQL URL: {e}"));
    }
    if p.table.value.is_empty() || p.table.value.split('.').count() > 2 {
        c.at(&p.table, &format!("{field}.table"), "must name a table (`events` or `schema.events`)");
    }
    let columns = p.columns.as_ref().map(|c| c.value.clone()).unwrap_or_default();
    match (&p.columns, &p.jsonb_column) {
        (Some(cols), None) if cols.value.is_empty() || cols.value.iter().any(String::is_empty) => {
            c.at(cols, &format!("{field}.columns"), "must list at least one column, none empty")
        }
        (Some(_), None) | (None, Some(_)) => {}
        (Some(cols), Some(_)) => c.at(cols, &format!("{field}.columns"), "give `columns` or `jsonb_column`, not both"),
        (None, None) => c.at(&p.table, field, "needs `columns: [..]` or `jsonb_column: <column>`"),
    }
    let retry = retry_duration(c, &p.retry_duration_seconds, field);
    let mut backup_all = false;
    let modes = [("FailedDataOnly", false), ("AllData", true)];
    choose(c, &p.s3_backup_mode, &format!("{field}.s3_backup_mode"), &modes, &mut backup_all);
    (c.error_count() == before).then(|| PostgresSpec {
        url: Secret::new(p.url.value.clone()),
        table: p.table.value.clone(),
        columns,
        jsonb_column: p.jsonb_column.as_ref().map(|j| j.value.clone()),
        retry_duration: retry,
        backup_all,
    })
}
