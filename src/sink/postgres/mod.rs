//! PostgreSQL as a destination: each batch loaded with `COPY ... FROM STDIN` in one transaction
//! that also records the batch's id, so a batch sent again (a retry after a lost answer, a replay
//! after a crash) finds its id and loads nothing: **exactly once into the table**.
//!
//! Client: tokio-postgres (with rustls through tokio-postgres-rustls). It exposes COPY as a
//! stream (`copy_in`), text and binary alike, and the server's error fields (SQLSTATE, the
//! failing COPY line); sqlx hides COPY behind its pool and gives neither.
//!
//! A transaction:
//! 1. `SELECT` the batch id in `sluice_loaded_batches`: found means loaded before; its rejected
//!    rows (kept with it) are given again, so the error output is complete after a replay too.
//! 2. `COPY` the rows (`rows.rs`) under a savepoint. A row the server refuses (a data or
//!    constraint error: SQLSTATE classes 22 and 23) names its line: the savepoint is rolled back,
//!    the rows before it are copied again, that row is rejected with the server's message, and
//!    the rest continues. So k bad rows cost about k + 1 COPYs, never a row-by-row reload. Without a
//!    line number the range is halved instead.
//! 3. `INSERT` the batch id with the rejected rows, then `COMMIT`.
//!
//! Anything else (connection lost, server restarting, `lock_timeout`, disk full) fails the attempt
//! as a whole; nothing of it was committed, and the shared retry loop (`pipeline/sending.rs`)
//! sends it again until `retry_duration_seconds`, then writes `postgres-failed` error records.

pub mod config;
pub mod firehose;
mod rows;

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::SinkExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Transaction};

use super::destination::{Destination, Outcome, SendError};
use super::SinkError;
use crate::process::ErrorOutputType;
use crate::record::Record;
use config::PostgresSpec;
pub use rows::{Column, Layout};

/// Where loaded batch ids are kept (in the connection's default schema), with their rejected rows.
const LEDGER: &str = "sluice_loaded_batches";
/// A batch id is needed only while its batch can be replayed (hours at most); older ones go.
const LEDGER_KEEP: &str = "7 days";
/// A locked table fails the attempt after this, to be retried, instead of hanging it.
const LOCK_TIMEOUT: &str = "10s";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub const CODE_DATA: &str = "Postgres.DataError";
pub const CODE_RECORD: &str = "Postgres.InvalidRecord";
pub const CODE_CONNECTION: &str = "Postgres.ConnectionFailed";
pub const CODE_ERROR: &str = "Postgres.Error";

pub struct Postgres {
    spec: PostgresSpec,
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// Idle connections; a connection that failed is dropped, not returned.
    idle: Mutex<Vec<Client>>,
    /// The table's columns, read from the catalog on the first connection.
    layout: tokio::sync::OnceCell<Arc<Layout>>,
    /// `host:port/db table`, never the password.
    name: String,
}

impl Postgres {
    pub fn new(spec: &PostgresSpec) -> Result<Self, SinkError> {
        let config: tokio_postgres::Config =
            spec.url.expose().parse().map_err(|e| SinkError::Setup(format!("postgres url: {e}")))?;
        let mut config = config;
        config.connect_timeout(CONNECT_TIMEOUT).application_name("sluice");
        let tls = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => None,
            _ => Some(tls()?),
        };
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_default();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let name = format!("{host}:{port}/{} {}", config.get_dbname().unwrap_or(""), spec.table);
        Ok(Self { spec: spec.clone(), config, tls, idle: Mutex::new(Vec::new()), layout: Default::default(), name })
    }

    async fn connect(&self) -> Result<Client, SendError> {
        let client = connect(&self.config, self.tls.as_ref())
            .await
            .map_err(|e| SendError::retry(CODE_CONNECTION, format!("cannot connect: {e}")))?;
        let setup = format!(
            "SET lock_timeout = '{LOCK_TIMEOUT}';
             CREATE TABLE IF NOT EXISTS {LEDGER} (
                 table_name text NOT NULL,
                 batch_id text NOT NULL,
                 rejected text NOT NULL,
                 loaded_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (table_name, batch_id));
             DELETE FROM {LEDGER} WHERE loaded_at < now() - interval '{LEDGER_KEEP}';"
        );
        client.batch_execute(&setup).await.map_err(|e| db_error(&e))?;
        Ok(client)
    }

    /// The table's columns from the catalog, checked against the config.
    async fn layout(&self, client: &Client) -> Result<Arc<Layout>, SendError> {
        self.layout
            .get_or_try_init(|| async {
                let rows = client
                    .query(
                        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull AND NOT a.atthasdef
                         FROM pg_attribute a
                         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                        &[&self.spec.table],
                    )
                    .await
                    .map_err(|e| db_error(&e))?;
                let table: Vec<Column> =
                    rows.iter().map(|r| Column { name: r.get(0), type_name: r.get(1), required: r.get(2) }).collect();
                if table.is_empty() {
                    return Err(SendError::retry(CODE_ERROR, format!("table {} does not exist", self.spec.table)));
                }
                let find = |name: &str| {
                    table.iter().find(|c| c.name == name).cloned().ok_or_else(|| {
                        SendError::retry(CODE_ERROR, format!("table {} has no column \"{name}\"", self.spec.table))
                    })
                };
                let layout = match &self.spec.jsonb_column {
                    Some(column) => Layout::Document(find(column)?),
                    None => Layout::Columns(self.spec.columns.iter().map(|c| find(c)).collect::<Result<_, _>>()?),
                };
                Ok(Arc::new(layout))
            })
            .await
            .cloned()
    }

    async fn client(&self) -> Result<Client, SendError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(c) if !c.is_closed() => Ok(c),
            _ => self.connect().await,
        }
    }

    fn copy_statement(&self, layout: &Layout) -> String {
        let columns: Vec<String> = layout.column_names().into_iter().map(quote).collect();
        let table: Vec<String> = self.spec.table.split('.').map(quote).collect();
        format!("COPY {} ({}) FROM STDIN", table.join("."), columns.join(", "))
    }

    /// Loads one batch in one transaction; `Err` means nothing of it was committed.
    async fn load(
        &self,
        client: &mut Client,
        layout: &Layout,
        batch_id: &str,
        records: &[Record],
        indexes: &[usize],
    ) -> Result<Vec<(usize, SendError)>, SendError> {
        let txn = client.transaction().await.map_err(|e| db_error(&e))?;
        let found = txn
            .query_opt(
                &format!("SELECT rejected FROM {LEDGER} WHERE table_name = $1 AND batch_id = $2"),
                &[&self.spec.table, &batch_id],
            )
            .await
            .map_err(|e| db_error(&e))?;
        if let Some(row) = found {
            // Loaded before (a replay, or a commit whose answer was lost): load nothing.
            tracing::info!(destination = %self.name, batch_id, "batch already loaded; skipped (exactly once)");
            return Ok(decode_rejected(&row.get::<_, String>(0)));
        }
        let mut rejected = Vec::new();
        let mut rows: Vec<(usize, Bytes)> = Vec::with_capacity(indexes.len());
        for (k, &i) in indexes.iter().enumerate() {
            match records.get(i).map(|r| layout.row(r)) {
                Some(Ok(line)) => rows.push((k, line)),
                Some(Err(why)) => rejected.push((k, SendError::permanent(CODE_RECORD, why))),
                None => {}
            }
        }
        let statement = self.copy_statement(layout);
        rejected.extend(copy_isolating_bad_rows(&txn, &statement, &rows).await?);
        rejected.sort_by_key(|(k, _)| *k);
        txn.execute(
            &format!("INSERT INTO {LEDGER} (table_name, batch_id, rejected) VALUES ($1, $2, $3)"),
            &[&self.spec.table, &batch_id, &encode_rejected(&rejected)],
        )
        .await
        .map_err(|e| db_error(&e))?;
        txn.commit().await.map_err(|e| db_error(&e))?;
        Ok(rejected)
    }
}

/// COPYs `rows` under savepoints, taking out each row the server refuses (see the module doc).
async fn copy_isolating_bad_rows(
    txn: &Transaction<'_>,
    statement: &str,
    rows: &[(usize, Bytes)],
) -> Result<Vec<(usize, SendError)>, SendError> {
    let mut rejected = Vec::new();
    // Ranges still to load, in order.
    let mut todo: Vec<Range<usize>> = std::iter::once(0..rows.len()).collect();
    while let Some(range) = todo.pop() {
        if range.is_empty() {
            continue;
        }
        txn.batch_execute("SAVEPOINT sluice_rows").await.map_err(|e| db_error(&e))?;
        let error = match copy(txn, statement, &rows[range.clone()]).await {
            Ok(()) => {
                txn.batch_execute("RELEASE SAVEPOINT sluice_rows").await.map_err(|e| db_error(&e))?;
                continue;
            }
            Err(e) => e,
        };
        let Some(db) = error.as_db_error().filter(|db| is_row_error(db.code())) else {
            return Err(db_error(&error));
        };
        txn.batch_execute("ROLLBACK TO SAVEPOINT sluice_rows").await.map_err(|e| db_error(&e))?;
        let line = db.where_().and_then(copy_line).filter(|l| (1..=range.len()).contains(l));
        match line {
            Some(line) => {
                let bad = range.start + line - 1;
                rejected.push((rows[bad].0, row_error(db)));
                todo.push(bad + 1..range.end);
                todo.push(range.start..bad);
            }
            None if range.len() == 1 => rejected.push((rows[range.start].0, row_error(db))),
            None => {
                let mid = range.start + range.len() / 2;
                todo.push(mid..range.end);
                todo.push(range.start..mid);
            }
        }
    }
    Ok(rejected)
}

async fn copy(txn: &Transaction<'_>, statement: &str, rows: &[(usize, Bytes)]) -> Result<(), tokio_postgres::Error> {
    let sink = txn.copy_in::<_, Bytes>(statement).await?;
    futures::pin_mut!(sink);
    let mut chunk = BytesMut::with_capacity(1 << 20);
    for (_, line) in rows {
        chunk.extend_from_slice(line);
        if chunk.len() >= 1 << 20 {
            sink.send(chunk.split().freeze()).await?;
        }
    }
    if !chunk.is_empty() {
        sink.send(chunk.freeze()).await?;
    }
    sink.finish().await.map(|_| ())
}

/// Data exceptions (22: bad values, wrong types) and integrity violations (23: NOT NULL, unique,
/// check, foreign key) belong to a row; everything else to the attempt.
fn is_row_error(code: &SqlState) -> bool {
    let code = code.code();
    code.starts_with("22") || code.starts_with("23")
}

/// The line a COPY error names in its context: `COPY events, line 3, column ts: "x"`.
fn copy_line(context: &str) -> Option<usize> {
    let rest = &context[context.find(", line ")? + ", line ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn row_error(db: &tokio_postgres::error::DbError) -> SendError {
    let mut message = format!("{} (SQLSTATE {})", db.message(), db.code().code());
    if let Some(detail) = db.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    SendError::permanent(CODE_DATA, message)
}

/// An error that fails the attempt: retried.
fn db_error(e: &tokio_postgres::Error) -> SendError {
    match e.as_db_error() {
        Some(db) => SendError::retry(CODE_ERROR, format!("{} (SQLSTATE {})", db.message(), db.code().code())),
        None if e.is_closed() => SendError::retry(CODE_CONNECTION, "the connection was closed"),
        None => SendError::retry(CODE_CONNECTION, e.to_string()),
    }
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Rejected rows as kept in the ledger: `[[position, code, message], ...]`.
fn encode_rejected(rejected: &[(usize, SendError)]) -> String {
    let rows: Vec<(usize, &str, &str)> = rejected.iter().map(|(k, e)| (*k, e.code, e.message.as_str())).collect();
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into())
}

fn decode_rejected(text: &str) -> Vec<(usize, SendError)> {
    let rows: Vec<(usize, String, String)> = serde_json::from_str(text).unwrap_or_default();
    rows.into_iter()
        .map(|(k, code, message)| {
            let code = if code == CODE_RECORD { CODE_RECORD } else { CODE_DATA };
            (k, SendError::permanent(code, message))
        })
        .collect()
}

/// Connects (with TLS when given) and drives the connection on its own task; also Redshift's.
pub(crate) async fn connect(
    config: &tokio_postgres::Config,
    tls: Option<&tokio_postgres_rustls::MakeRustlsConnect>,
) -> Result<Client, tokio_postgres::Error> {
    Ok(match tls {
        None => {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client
        }
        Some(tls) => {
            let (client, connection) = config.connect(tls.clone()).await?;
            tokio::spawn(connection);
            client
        }
    })
}

/// TLS with the system's roots, verifying the server's certificate and name (libpq's
/// `verify-full`, which sluice applies to `sslmode=require` too: an unverified server would see
/// the password).
pub(crate) fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, SinkError> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SinkError::Setup(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[async_trait]
impl Destination for Postgres {
    fn name(&self) -> &str {
        &self.name
    }

    fn error_output_type(&self) -> ErrorOutputType {
        ErrorOutputType::DeliveryFailed("postgres-failed")
    }

    /// One transaction per batch: COPY has no request size limit.
    fn requests(&self, records: &[Record]) -> Vec<Range<usize>> {
        std::iter::once(0..records.len()).collect()
    }

    async fn send(&self, request_id: &str, records: &[Record], indexes: &[usize]) -> Outcome {
        let mut client = match self.client().await {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(e),
        };
        let layout = match self.layout(&client).await {
            Ok(l) => l,
            Err(e) => return Outcome::Failed(e),
        };
        match self.load(&mut client, &layout, request_id, records, indexes).await {
            Ok(rejected) => {
                self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(client);
                match rejected.first() {
                    None => Outcome::Delivered,
                    Some((_, first)) => {
                        let cause = first.clone();
                        Outcome::Partial { retry: Vec::new(), rejected, cause }
                    }
                }
            }
            // The connection may be mid-transaction or broken: it is not reused.
            Err(e) => Outcome::Failed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_line_is_read_from_the_copy_context() {
        assert_eq!(copy_line("COPY events, line 3, column ts: \"x\""), Some(3));
        assert_eq!(copy_line("COPY events, line 12: \"1\tx\""), Some(12));
        assert_eq!(copy_line("SQL function"), None);
    }

    #[test]
    fn rejected_rows_survive_the_ledger() {
        let rejected =
            vec![(4, SendError::permanent(CODE_DATA, "bad \"x\"")), (9, SendError::permanent(CODE_RECORD, "no"))];
        assert_eq!(decode_rejected(&encode_rejected(&rejected)), rejected);
    }
}
