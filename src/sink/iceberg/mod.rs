//! Apache Iceberg tables as a destination, the way Firehose delivers to them, exactly once.
//!
//! A batch is one request. Each record is routed to a database and table — the destination's
//! default, or Firehose's JSONQuery (`routing:`, a jq query giving `destinationDatabaseName`,
//! `destinationTableName` and `operation`), or a WASM plugin's partition keys of those names (Firehose:
//! a Lambda's `otfMetadata`; the pipeline splits batches by them, see `routing_keys`) — and each
//! table's records are committed in one append
//! (`table.rs`: Parquet data files in the table's partition spec, the batch id in the snapshot
//! summary, a replayed batch recognised and skipped). So a table gets one commit per batch, and the
//! buffering hints are the commit interval and the data files' size.
//!
//! What goes to the error prefix (`iceberg-failed`), with the reason: records routing cannot
//! place, records naming a table that does not exist (with `create_tables` off), records whose
//! values do not fit the table's columns, and `update`/`delete` records (sluice appends only:
//! equality deletes are not committed yet). A catalog or store failure retries the table's records
//! (only the tables that failed) until `retry_duration_seconds`.
//!
//! Catalogs: `catalog.rs` (Glue, REST, SQL on PostgreSQL or SQLite), all through iceberg-rust.

pub mod catalog;
pub mod config;
pub mod firehose;
mod rows;
mod table;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use iceberg::{Catalog, NamespaceIdent, TableIdent};

use super::destination::{Destination, Outcome, SendError};
use crate::process::metadata::MetadataExtraction;
use crate::process::{ErrorOutputType, PartitionKeys};
use crate::record::Record;
use config::IcebergSpec;
use table::{TableError, TableRules};

pub use table::BATCH_PROPERTY;

/// Firehose's routing metadata (JSONQuery or a Lambda's `otfMetadata`), here also a plugin's
/// partition keys of these names.
pub const ROUTING_KEYS: &[&str] = &["destinationDatabaseName", "destinationTableName", "operation"];

pub const CODE_ROUTING: &str = "Iceberg.RoutingFailed";
pub const CODE_NO_TABLE: &str = "Iceberg.TableNotFound";
pub const CODE_OPERATION: &str = "Iceberg.UnsupportedOperation";
pub const CODE_RECORD: &str = "Iceberg.InvalidRecord";
pub const CODE_CATALOG: &str = "Iceberg.CatalogError";

/// Iceberg's default target data file size (`write.target-file-size-bytes`): a batch larger than
/// this is written as several files.
const TARGET_FILE_BYTES: usize = 512 * 1024 * 1024;
/// Tables committed at once for one batch (each commit is a few catalog round trips).
const TABLES_AT_ONCE: usize = 4;

pub struct Iceberg {
    spec: IcebergSpec,
    routing: Option<MetadataExtraction>,
    catalog: tokio::sync::OnceCell<Arc<dyn Catalog>>,
    name: String,
}

/// Where one record goes.
type Route = (String, String);

impl Iceberg {
    pub fn new(spec: &IcebergSpec) -> Result<Self, super::SinkError> {
        let routing = match &spec.routing {
            Some(q) => Some(
                MetadataExtraction::compile(q).map_err(|e| super::SinkError::Setup(format!("iceberg routing: {e}")))?,
            ),
            None => None,
        };
        let name = match (&spec.database, &spec.table) {
            (Some(d), Some(t)) => format!("iceberg {d}.{t}"),
            _ => "iceberg (routed)".to_string(),
        };
        Ok(Self { spec: spec.clone(), routing, catalog: Default::default(), name })
    }

    async fn catalog(&self) -> Result<&Arc<dyn Catalog>, SendError> {
        self.catalog
            .get_or_try_init(|| catalog::open(&self.spec.catalog))
            .await
            .map_err(|e| SendError::retry(CODE_CATALOG, e))
    }

    /// The table a record goes to, or why it has none: the routing query's answer, else the
    /// batch's plugin keys (a WASM plugin's `destinationTableName`, ...), else the defaults.
    fn route(&self, data: &[u8], plugin: Option<&BTreeMap<String, String>>) -> Result<Route, SendError> {
        let mut keys = match &self.routing {
            Some(query) => query
                .extract(data)
                .map_err(|e| SendError::permanent(CODE_ROUTING, format!("the routing query failed: {e}")))?,
            None => BTreeMap::new(),
        };
        for (name, value) in plugin.into_iter().flatten() {
            if ROUTING_KEYS.contains(&name.as_str()) {
                keys.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
        if !self.spec.append_only {
            match keys.get("operation").map(|o| o.to_ascii_lowercase()).as_deref() {
                None | Some("insert") => {}
                Some(op @ ("update" | "delete")) => {
                    return Err(SendError::permanent(
                        CODE_OPERATION,
                        format!("operation `{op}` needs unique keys and equality deletes, which sluice does not commit yet (append_only: true treats every record as an insert)"),
                    ))
                }
                Some(other) => {
                    return Err(SendError::permanent(
                        CODE_ROUTING,
                        format!("operation `{other}` is not insert, update or delete"),
                    ))
                }
            }
        }
        let pick = |key: &str, default: &Option<String>, what: &str| -> Result<String, SendError> {
            let name = keys.get(key).cloned().or_else(|| default.clone()).ok_or_else(|| {
                SendError::permanent(
                    CODE_ROUTING,
                    format!("the routing query gave no {key} and there is no default {what}"),
                )
            })?;
            if name.is_empty()
                || name.len() > 255
                || name.contains(['/', '.', '\\'])
                || name.chars().any(char::is_control)
            {
                return Err(SendError::permanent(CODE_ROUTING, format!("`{name}` is not a {what} name")));
            }
            Ok(name)
        };
        let database = pick("destinationDatabaseName", &self.spec.database, "database")?;
        let table = pick("destinationTableName", &self.spec.table, "table")?;
        Ok((database, table))
    }

    /// One table's part of the batch, with the table, its records' positions for the outcome, and
    /// the time from loading the table to the commit's answer (the commit latency it sees).
    async fn append<'r>(
        &self,
        catalog: Arc<dyn Catalog>,
        (database, table): Route,
        rows: Vec<(usize, &'r [u8])>,
        request_id: &str,
    ) -> (TableIdent, Vec<(usize, &'r [u8])>, std::time::Duration, Result<table::Appended, TableError>) {
        let ident = TableIdent::new(NamespaceIdent::new(database.clone()), table.clone());
        let options = self.spec.table_options(&database, &table);
        let rules = TableRules {
            create: self.spec.create_tables,
            evolve: self.spec.schema_evolution,
            partition_by: options.map_or(&[][..], |o| &o.partition_by[..]),
            target_file_bytes: TARGET_FILE_BYTES,
        };
        let started = std::time::Instant::now();
        let result = table::append(catalog.as_ref(), &ident, request_id, &rows, &rules).await;
        (ident, rows, started.elapsed(), result)
    }
}

#[async_trait]
impl Destination for Iceberg {
    fn name(&self) -> &str {
        &self.name
    }

    fn error_output_type(&self) -> ErrorOutputType {
        ErrorOutputType::DeliveryFailed("iceberg-failed")
    }

    /// A whole batch is one request: each table gets one commit per batch.
    fn requests(&self, records: &[Record]) -> Vec<std::ops::Range<usize>> {
        std::iter::once(0..records.len()).filter(|r| !r.is_empty()).collect()
    }

    async fn send(&self, request_id: &str, records: &[Record], indexes: &[usize]) -> Outcome {
        self.send_keyed(request_id, records, indexes, None).await
    }

    fn routing_keys(&self) -> &'static [&'static str] {
        ROUTING_KEYS
    }

    async fn send_keyed(
        &self,
        request_id: &str,
        records: &[Record],
        indexes: &[usize],
        keys: Option<&PartitionKeys>,
    ) -> Outcome {
        let plugin = keys.map(|k| &k.lambda);
        let mut rejected: Vec<(usize, SendError)> = Vec::new();
        let mut tables: BTreeMap<Route, Vec<(usize, &[u8])>> = BTreeMap::new();
        for (pos, &i) in indexes.iter().enumerate() {
            let Some(record) = records.get(i) else { continue };
            match self.route(&record.data, plugin) {
                Ok(route) => tables.entry(route).or_default().push((pos, &record.data)),
                Err(e) => rejected.push((pos, e)),
            }
        }
        let catalog = match self.catalog().await {
            Ok(c) => c.clone(),
            Err(e) if rejected.is_empty() => return Outcome::Failed(e),
            Err(e) => {
                let retry = tables.into_values().flatten().map(|(pos, _)| pos).collect();
                return Outcome::Partial { retry, rejected, cause: e };
            }
        };
        let mut appends = Vec::with_capacity(tables.len());
        for (route, rows) in tables {
            appends.push(self.append(catalog.clone(), route, rows, request_id));
        }
        let results: Vec<_> = futures::stream::iter(appends).buffer_unordered(TABLES_AT_ONCE).collect().await;
        let mut retry = Vec::new();
        let mut cause = None;
        for (ident, rows, took, result) in results {
            match result {
                Ok(appended) => {
                    if appended.before {
                        tracing::info!(destination = %self.name, table = %ident, batch_id = request_id,
                            "batch already committed to the table; skipped (exactly once)");
                    } else {
                        tracing::debug!(destination = %self.name, table = %ident, rows = appended.rows,
                            commit_ms = took.as_millis() as u64, "committed");
                    }
                    rejected.extend(
                        appended
                            .refused
                            .into_iter()
                            .map(|(pos, reason)| (pos, SendError::permanent(CODE_RECORD, reason))),
                    )
                }
                Err(e @ (TableError::Missing(_) | TableError::Refused(_))) => {
                    let code = if matches!(e, TableError::Missing(_)) { CODE_NO_TABLE } else { CODE_RECORD };
                    let e = SendError::permanent(code, e.to_string());
                    rejected.extend(rows.iter().map(|(pos, _)| (*pos, e.clone())));
                }
                Err(TableError::Failed(reason)) => {
                    retry.extend(rows.iter().map(|(pos, _)| *pos));
                    cause = Some(SendError::retry(CODE_CATALOG, catalog::redact(&reason, &self.spec.catalog)));
                }
            }
        }
        match cause {
            None if rejected.is_empty() => Outcome::Delivered,
            Some(cause) if rejected.is_empty() && retry.len() == indexes.len() => Outcome::Failed(cause),
            cause => {
                rejected.sort_by_key(|(pos, _)| *pos);
                let cause = cause.unwrap_or_else(|| SendError::permanent(CODE_RECORD, "records refused"));
                Outcome::Partial { retry, rejected, cause }
            }
        }
    }
}
