//! `destination: iceberg:` as written, its validated form, and the rules between them. A
//! config-layer module: it imports the config kit and the jq compiler (routing queries) only.
//!
//! ```yaml
//! destination:
//!   iceberg:
//!     catalog:
//!       type: sql                      # glue (Firehose's), rest, or sql (PostgreSQL or SQLite)
//!       uri: postgres://sluice:${PGPASSWORD}@db/lake   # sql: the database; rest: the server; glue: an endpoint
//!       warehouse: s3://lake/warehouse # where new tables' files go (a local path for a local warehouse)
//!       s3_endpoint: http://minio:9000 # S3-compatible data store (MinIO); region, keys as below
//!     database: logs                   # where records without routing go
//!     table: events
//!     routing: '{destinationDatabaseName: .db, destinationTableName: .kind}'   # Firehose's JSONQuery
//!     create_tables: true              # TableCreationConfiguration (off by default, as in Firehose)
//!     schema_evolution: true           # SchemaEvolutionConfiguration: add new top-level columns
//!     tables:                          # DestinationTableConfigurationList
//!       - { database: logs, table: events, partition_by: [day] }
//!     backup: { local: { path: /var/lib/sluice/iceberg-errors } }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::kit::{choose, retry_duration, Checker, RawDestination, Secret, Spanned};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIceberg {
    pub catalog: Spanned<RawCatalog>,
    /// The database (Iceberg namespace) and table of records that routing does not name.
    pub database: Option<Spanned<String>>,
    pub table: Option<Spanned<String>>,
    /// A jq query giving each record an object with `destinationDatabaseName`,
    /// `destinationTableName` and `operation` (Firehose's JSONQuery routing).
    pub routing: Option<Spanned<String>>,
    /// Per-table options (Firehose's `DestinationTableConfigurationList`).
    pub tables: Option<Vec<Spanned<RawTable>>>,
    /// Create a table a record names when it does not exist (schema from the records).
    pub create_tables: Option<Spanned<bool>>,
    /// Add a column when records carry a top-level key the table does not have.
    pub schema_evolution: Option<Spanned<bool>>,
    /// Firehose's `AppendOnly`: every record is an insert, whatever `operation` says.
    pub append_only: Option<Spanned<bool>>,
    pub retry_duration_seconds: Option<Spanned<u64>>,
    /// FailedDataOnly | AllData
    pub s3_backup_mode: Option<Spanned<String>>,
    /// Where records the tables refuse go: an `s3:` or `local:` destination.
    pub backup: Spanned<RawDestination>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    /// glue | rest | sql
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// The catalog's name (a SQL catalog keeps it in every row; readers open it by this name).
    pub name: Option<Spanned<String>>,
    pub uri: Option<Spanned<String>>,
    pub warehouse: Option<Spanned<String>>,
    /// Glue's catalog id (the account), when not the caller's.
    pub catalog_id: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    /// The S3-compatible store holding the tables' files (MinIO, Ceph, moto), when not AWS.
    pub s3_endpoint: Option<Spanned<String>>,
    /// Keys for the catalog (Glue) and the store; without them the usual AWS environment applies.
    pub access_key_id: Option<Spanned<String>>,
    pub secret_access_key: Option<Spanned<String>>,
    /// Any other property the catalog or its file IO reads (`s3.path-style-access`, a REST token).
    pub properties: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    pub database: Spanned<String>,
    pub table: Spanned<String>,
    /// Columns a created table is partitioned by (identity, as Firehose's `PartitionSpec`).
    pub partition_by: Option<Spanned<Vec<String>>>,
    /// Firehose's `UniqueKeys` for updates and deletes: refused until sluice commits delete files.
    pub unique_keys: Option<Spanned<Vec<String>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogKind {
    Glue,
    Rest,
    Sql,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CatalogSpec {
    pub kind: CatalogKind,
    pub name: String,
    pub uri: Option<Secret>,
    pub warehouse: Option<String>,
    pub catalog_id: Option<String>,
    pub region: Option<String>,
    pub s3_endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub properties: BTreeMap<String, Secret>,
}

/// One table's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub database: String,
    pub table: String,
    pub partition_by: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IcebergSpec {
    pub catalog: CatalogSpec,
    pub database: Option<String>,
    pub table: Option<String>,
    pub routing: Option<String>,
    pub tables: Vec<TableSpec>,
    pub create_tables: bool,
    pub schema_evolution: bool,
    pub append_only: bool,
    pub retry_duration: Duration,
    pub backup_all: bool,
}

impl IcebergSpec {
    /// The options of `database.table`, if listed.
    pub fn table_options(&self, database: &str, table: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.database == database && t.table == table)
    }
}

/// Iceberg namespace and table names as Glue accepts them (and every other catalog does).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

pub const NAME_RULE: &str = "must be 1-255 of a-z 0-9 _ - (Glue's rule for databases and tables)";

pub fn validate(c: &mut Checker, i: &RawIceberg, field: &str) -> Option<IcebergSpec> {
    let before = c.error_count();
    let catalog = validate_catalog(c, &i.catalog, &format!("{field}.catalog"));
    for (name, value) in [("database", &i.database), ("table", &i.table)] {
        if let Some(v) = value {
            if !valid_name(&v.value) {
                c.at(v, &format!("{field}.{name}"), NAME_RULE);
            }
        }
    }
    match (&i.database, &i.table, &i.routing) {
        (Some(_), Some(_), _) | (None, None, Some(_)) => {}
        (None, None, None) => c.at(&i.catalog, field, "needs `database` and `table`, or `routing` (a jq query)"),
        (Some(d), None, _) => c.at(d, field, "`database` needs `table` beside it"),
        (None, Some(t), _) => c.at(t, field, "`table` needs `database` beside it"),
    }
    if let Some(r) = &i.routing {
        if let Err(e) = crate::process::metadata::MetadataExtraction::compile(&r.value) {
            c.at(r, &format!("{field}.routing"), format!("is not a jq query: {e}"));
        }
    }
    let mut tables = Vec::new();
    for (n, t) in i.tables.iter().flatten().enumerate() {
        let at = format!("{field}.tables[{n}]");
        for (name, v) in [("database", &t.value.database), ("table", &t.value.table)] {
            if !valid_name(&v.value) {
                c.at(v, &format!("{at}.{name}"), NAME_RULE);
            }
        }
        if let Some(keys) = &t.value.unique_keys {
            c.at(
                keys,
                &format!("{at}.unique_keys"),
                "updates and deletes (Iceberg equality deletes) are not supported yet: sluice appends only; \
                 leave unique_keys out and route update/delete records elsewhere",
            );
        }
        let partition_by = t.value.partition_by.as_ref().map(|p| p.value.clone()).unwrap_or_default();
        if let Some(p) = &t.value.partition_by {
            if p.value.iter().any(String::is_empty) {
                c.at(p, &format!("{at}.partition_by"), "must list column names, none empty");
            }
        }
        tables.push(TableSpec {
            database: t.value.database.value.clone(),
            table: t.value.table.value.clone(),
            partition_by,
        });
    }
    let retry = retry_duration(c, &i.retry_duration_seconds, field);
    let mut backup_all = false;
    choose(
        c,
        &i.s3_backup_mode,
        &format!("{field}.s3_backup_mode"),
        &[("FailedDataOnly", false), ("AllData", true)],
        &mut backup_all,
    );
    let create_tables = i.create_tables.as_ref().is_some_and(|v| v.value);
    if create_tables && catalog.as_ref().is_some_and(|c| c.warehouse.is_none() && c.kind != CatalogKind::Rest) {
        c.at(
            &i.catalog,
            &format!("{field}.catalog.warehouse"),
            "is needed with create_tables: where new tables' files go",
        );
    }
    let catalog = catalog?;
    (c.error_count() == before).then(|| IcebergSpec {
        catalog,
        database: i.database.as_ref().map(|d| d.value.clone()),
        table: i.table.as_ref().map(|t| t.value.clone()),
        routing: i.routing.as_ref().map(|r| r.value.clone()),
        tables,
        create_tables,
        schema_evolution: i.schema_evolution.as_ref().is_some_and(|v| v.value),
        append_only: i.append_only.as_ref().is_some_and(|v| v.value),
        retry_duration: retry,
        backup_all,
    })
}

fn validate_catalog(c: &mut Checker, raw: &Spanned<RawCatalog>, field: &str) -> Option<CatalogSpec> {
    let r = &raw.value;
    let mut kind = CatalogKind::Glue;
    let kinds = [("glue", CatalogKind::Glue), ("rest", CatalogKind::Rest), ("sql", CatalogKind::Sql)];
    if !choose(c, &Some(r.kind.clone()), &format!("{field}.type"), &kinds, &mut kind) {
        return None;
    }
    let uri = r.uri.as_ref();
    match (kind, uri) {
        (CatalogKind::Sql, None) => {
            c.at(raw, &format!("{field}.uri"), "is needed: `postgres://...` or `sqlite://<file>`")
        }
        (CatalogKind::Sql, Some(u))
            if !["postgres://", "postgresql://", "sqlite:"].iter().any(|p| u.value.starts_with(p)) =>
        {
            c.at(
                u,
                &format!("{field}.uri"),
                "must be a postgres:// URL or sqlite://<file> (sqlite::memory: is lost on exit)",
            )
        }
        (CatalogKind::Sql, Some(u)) if u.value.starts_with("sqlite::memory:") => c.at(
            u,
            &format!("{field}.uri"),
            "an in-memory catalog forgets every commit on restart: use sqlite://<file>",
        ),
        (CatalogKind::Rest, None) => c.at(raw, &format!("{field}.uri"), "is needed: the REST catalog's http(s):// URL"),
        (CatalogKind::Rest | CatalogKind::Glue, Some(u)) => crate::config::kit::http_url(c, u, &format!("{field}.uri")),
        _ => {}
    }
    match (kind, &r.warehouse) {
        (CatalogKind::Sql, None) => c.at(
            raw,
            &format!("{field}.warehouse"),
            "is needed for a sql catalog: `s3://bucket/path` or a local directory",
        ),
        (CatalogKind::Glue, None) => c.at(
            raw,
            &format!("{field}.warehouse"),
            "is needed for a glue catalog (iceberg-rust's Glue catalog opens only with one): `s3://bucket/path`",
        ),
        _ => {}
    }
    let warehouse = r.warehouse.as_ref().map(|w| {
        let v = w.value.trim_end_matches('/').to_string();
        if v.contains("://") {
            if !(v.starts_with("s3://") || v.starts_with("s3a://") || v.starts_with("file://")) {
                c.at(w, &format!("{field}.warehouse"), "must be s3://bucket/path, file:///path or a local directory");
            }
            v
        } else {
            // A local directory: absolute, as the table metadata will record it.
            format!("file://{}", c.path(&v).display())
        }
    });
    if let Some(e) = &r.s3_endpoint {
        crate::config::kit::http_url(c, e, &format!("{field}.s3_endpoint"));
    }
    // iceberg-catalog-sql parses these itself and panics on a bad value: check them here.
    for (key, value) in r.properties.iter().flatten() {
        let ok = match key.as_str() {
            "pool.max-connections" | "pool.idle-timeout" => value.value.parse::<u64>().is_ok(),
            "pool.test-before-acquire" => value.value.parse::<bool>().is_ok(),
            "sql_bind_style" => ["DollarNumeric", "QMark"].contains(&value.value.as_str()),
            _ => true,
        };
        if !ok {
            c.at(value, &format!("{field}.properties.{key}"), "is not a valid value for this catalog property");
        }
    }
    if r.access_key_id.is_some() != r.secret_access_key.is_some() {
        c.at(raw, field, "give both access_key_id and secret_access_key, or neither");
    }
    let uri = uri.map(|u| match u.value.strip_prefix("sqlite://") {
        Some(file) => Secret::new(sqlite_uri(c, file)),
        None => Secret::new(u.value.clone()),
    });
    Some(CatalogSpec {
        kind,
        name: r.name.as_ref().map_or_else(|| "sluice".to_string(), |n| n.value.clone()),
        uri,
        warehouse,
        catalog_id: r.catalog_id.as_ref().map(|v| v.value.clone()),
        region: r.region.as_ref().map(|v| v.value.clone()),
        s3_endpoint: r.s3_endpoint.as_ref().map(|v| v.value.trim_end_matches('/').to_string()),
        access_key_id: r.access_key_id.as_ref().map(|v| v.value.clone()),
        secret_access_key: r.secret_access_key.as_ref().map(|v| Secret::new(v.value.clone())),
        properties: r.properties.iter().flatten().map(|(k, v)| (k.clone(), Secret::new(v.value.clone()))).collect(),
    })
}

/// A SQLite catalog file as sqlx opens it: relative to the config file (like every path in it),
/// created on first use (`mode=rwc`) unless the URI says otherwise.
fn sqlite_uri(c: &Checker, file: &str) -> String {
    let (path, query) = file.split_once('?').unwrap_or((file, ""));
    let path = c.path(path);
    let mode = if query.split('&').any(|kv| kv.starts_with("mode=")) { "" } else { "mode=rwc" };
    let query: Vec<&str> = [query, mode].into_iter().filter(|q| !q.is_empty()).collect();
    format!("sqlite://{}?{}", path.display(), query.join("&"))
}
