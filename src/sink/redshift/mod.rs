//! Redshift, loaded the way Firehose loads it: the batch is staged as an object in the intermediate
//! S3 bucket (by the pipeline, `pipeline/staged.rs`), a manifest naming it is written beside it,
//! and this client runs, over Redshift's PostgreSQL wire protocol,
//!
//! ```sql
//! COPY <table> (<columns>) FROM 's3://<bucket>/<manifest>' CREDENTIALS 'aws_iam_role=<role>' MANIFEST <options>
//! ```
//!
//! inside a transaction that also records the batch's id in `sluice_loaded_batches`, as the
//! PostgreSQL destination does: a batch staged again after a crash finds its id and is not loaded
//! twice (Firehose promises no such thing). COPY is atomic in Redshift: a batch loads whole or not
//! at all, and a failed COPY is retried until the retry duration, then skipped with its manifest
//! written to the error prefix (Firehose's behaviour).
//!
//! Only the simple query protocol is used (statements as text, no prepared statements): it is
//! what every Redshift-compatible endpoint speaks, and it makes the statements sent exactly the
//! transcript the tests check. Values inlined in statements are quoted (`literal`); the role ARN is
//! not a secret, and no key ever goes into a statement.

use std::sync::Mutex;
use std::time::Duration;

use tokio_postgres::{Client, SimpleQueryMessage};

use super::destination::SendError;
use super::loader::{Loaded, Loader};
use super::SinkError;
pub use config::JdbcUrl;
use config::RedshiftSpec;

pub mod config;
pub mod firehose;

const LEDGER: &str = "sluice_loaded_batches";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub const CODE_COPY: &str = "Redshift.CopyFailed";
pub const CODE_CONNECTION: &str = "Redshift.ConnectionFailed";

pub struct Redshift {
    spec: RedshiftSpec,
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    idle: Mutex<Option<Client>>,
    /// `host:port/db`, for logs.
    name: String,
}

impl Redshift {
    pub fn new(spec: &RedshiftSpec) -> Result<Self, SinkError> {
        let jdbc = JdbcUrl::parse(&spec.cluster_jdbc_url).map_err(SinkError::Setup)?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&jdbc.host)
            .port(jdbc.port)
            .dbname(&jdbc.database)
            .user(&spec.username)
            .password(spec.password.expose())
            .application_name("sluice")
            .connect_timeout(CONNECT_TIMEOUT);
        let tls = if jdbc.ssl {
            Some(super::postgres::tls()?)
        } else {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            None
        };
        let name = format!("{}:{}/{}", jdbc.host, jdbc.port, jdbc.database);
        Ok(Self { spec: spec.clone(), config, tls, idle: Mutex::new(None), name })
    }

    async fn connect(&self) -> Result<Client, SendError> {
        let client = super::postgres::connect(&self.config, self.tls.as_ref())
            .await
            .map_err(|e| SendError::retry(CODE_CONNECTION, format!("cannot connect: {e}")))?;
        run(
            &client,
            &format!(
                "CREATE TABLE IF NOT EXISTS {LEDGER} (table_name VARCHAR(256) NOT NULL, batch_id VARCHAR(64) NOT NULL, \
                 loaded_at TIMESTAMP NOT NULL DEFAULT GETDATE())"
            ),
        )
        .await?;
        Ok(client)
    }

    /// The COPY statement for a manifest (Firehose's shape).
    pub fn copy_statement(&self, manifest_url: &str) -> String {
        let c = &self.spec.copy;
        let columns = match &c.columns {
            Some(columns) => format!(" ({columns})"),
            None => String::new(),
        };
        let options = match &c.options {
            Some(options) => format!(" {options}"),
            None => String::new(),
        };
        format!(
            "COPY {}{columns} FROM {} CREDENTIALS {} MANIFEST{options}",
            c.table,
            literal(manifest_url),
            literal(&format!("aws_iam_role={}", self.spec.role_arn)),
        )
    }

    /// Loads the batch whose manifest is at `manifest_url`, once.
    async fn load_once(&self, batch_id: &str, manifest_url: &str) -> Result<Loaded, SendError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).take();
        let client = match idle {
            Some(c) if !c.is_closed() => c,
            _ => self.connect().await?,
        };
        let result = self.transaction(&client, batch_id, manifest_url).await;
        match &result {
            Ok(_) => *self.idle.lock().unwrap_or_else(|p| p.into_inner()) = Some(client),
            // Leave no transaction open on a connection that may be reused; a broken one is dropped.
            Err(_) if !client.is_closed() => {
                if client.simple_query("ROLLBACK").await.is_ok() {
                    *self.idle.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
                }
            }
            Err(_) => {}
        }
        result
    }

    async fn transaction(&self, client: &Client, batch_id: &str, manifest_url: &str) -> Result<Loaded, SendError> {
        let table = literal(&self.spec.copy.table);
        let id = literal(batch_id);
        run(client, "BEGIN").await?;
        let found = client
            .simple_query(&format!("SELECT 1 FROM {LEDGER} WHERE table_name = {table} AND batch_id = {id}"))
            .await
            .map_err(|e| error(&e))?;
        if found.iter().any(|m| matches!(m, SimpleQueryMessage::Row(_))) {
            run(client, "COMMIT").await?;
            return Ok(Loaded::AlreadyLoaded);
        }
        run(client, &self.copy_statement(manifest_url)).await?;
        run(client, &format!("INSERT INTO {LEDGER} (table_name, batch_id) VALUES ({table}, {id})")).await?;
        run(client, "COMMIT").await?;
        Ok(Loaded::Loaded)
    }
}

async fn run(client: &Client, statement: &str) -> Result<(), SendError> {
    client.simple_query(statement).await.map(|_| ()).map_err(|e| error(&e))
}

fn error(e: &tokio_postgres::Error) -> SendError {
    match e.as_db_error() {
        Some(db) => SendError::retry(CODE_COPY, format!("{} (SQLSTATE {})", db.message(), db.code().code())),
        None => SendError::retry(CODE_CONNECTION, e.to_string()),
    }
}

/// A SQL string literal: quotes doubled, and backslashes too (Redshift treats `\` as an escape).
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

#[async_trait::async_trait]
impl Loader for Redshift {
    fn name(&self) -> &str {
        &self.name
    }

    fn error_output_type(&self) -> crate::process::ErrorOutputType {
        crate::process::ErrorOutputType::DeliveryFailed("redshift-failed")
    }

    /// A COPY manifest (Redshift's format): every staged object, mandatory.
    fn manifest(&self, object_urls: &[String]) -> bytes::Bytes {
        manifest(object_urls)
    }

    async fn load(&self, batch_id: &str, manifest_url: &str) -> Result<Loaded, SendError> {
        self.load_once(batch_id, manifest_url).await
    }
}

fn manifest(urls: &[String]) -> bytes::Bytes {
    let entries: Vec<serde_json::Value> =
        urls.iter().map(|u| serde_json::json!({ "url": u, "mandatory": true })).collect();
    bytes::Bytes::from(serde_json::json!({ "entries": entries }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_list_their_objects_as_mandatory() {
        assert_eq!(
            &manifest(&["s3://b/k.gz".to_string()])[..],
            br#"{"entries":[{"mandatory":true,"url":"s3://b/k.gz"}]}"#
        );
    }

    #[test]
    fn jdbc_urls_parse_as_firehose_takes_them() {
        let url = JdbcUrl::parse("jdbc:redshift://cluster.abc.us-east-1.redshift.amazonaws.com:5439/dev").unwrap();
        assert_eq!(url.host, "cluster.abc.us-east-1.redshift.amazonaws.com");
        assert_eq!((url.port, url.database.as_str(), url.ssl), (5439, "dev", true));
        assert!(!JdbcUrl::parse("jdbc:redshift://127.0.0.1:5440/dev?ssl=false").unwrap().ssl);
        assert!(JdbcUrl::parse("postgres://h/db").is_err());
        assert!(JdbcUrl::parse("jdbc:redshift://h:port/db").is_err());
        assert!(JdbcUrl::parse("jdbc:redshift://h:5439").is_err());
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(literal("it's a\\b"), "'it''s a\\\\b'");
    }
}
