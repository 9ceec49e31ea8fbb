//! The sending destinations in the config file, as written (validated into `EndpointSpec` by
//! `validate/endpoint.rs` and `validate/redshift.rs`): everything a `destination:` can be besides
//! an object store.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{ByteSize, RawDestination, RawObjectStore};

/// Firehose's RedshiftDestinationConfiguration, in the config's snake case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedshift {
    /// `jdbc:redshift://host:5439/db` (`?ssl=false` for a cluster reached without TLS).
    pub cluster_jdbc_url: Spanned<String>,
    pub username: Spanned<String>,
    pub password: Spanned<String>,
    /// The role Redshift assumes to read the staged objects (COPY's `CREDENTIALS 'aws_iam_role=..'`).
    pub role_arn: Spanned<String>,
    pub copy_command: Spanned<RawCopyCommand>,
    /// 0-7200, default 3600 (Firehose's).
    pub retry_duration_seconds: Option<Spanned<u64>>,
    /// The intermediate bucket the batches are staged in (Firehose's S3Configuration).
    pub s3: Spanned<RawObjectStore>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCopyCommand {
    pub data_table_name: Spanned<String>,
    /// `"a,b,c"`, as Firehose takes them.
    pub data_table_columns: Option<Spanned<String>>,
    pub copy_options: Option<Spanned<String>>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSearch {
    pub endpoint: Spanned<String>,
    pub index: Spanned<String>,
    /// NoRotation | OneHour | OneDay | OneWeek | OneMonth
    pub index_rotation: Option<Spanned<String>>,
    /// Only for Elasticsearch 6.x.
    pub type_name: Option<Spanned<String>>,
    /// FIREHOSE_DEFAULT | NO_DOCUMENT_ID
    pub document_id: Option<Spanned<String>>,
    pub auth: Option<Spanned<RawSearchAuth>>,
    pub retry_duration_seconds: Option<Spanned<u64>>,
    pub request_timeout_seconds: Option<Spanned<u64>>,
    /// `_bulk` requests are cut at this size (default 10MiB).
    pub bulk_max_bytes: Option<Spanned<ByteSize>>,
    pub tls: Option<Spanned<RawTls>>,
    /// FailedDocumentsOnly | AllDocuments
    pub s3_backup_mode: Option<Spanned<String>>,
    pub backup: Spanned<RawDestination>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawSearchAuth {
    Basic {
        username: String,
        password: String,
    },
    ApiKey(String),
    /// Amazon OpenSearch Service (`es`) or Serverless (`aoss`), with the standard AWS credentials.
    AwsSigv4 {
        service: Option<String>,
        region: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpEndpoint {
    pub url: Spanned<String>,
    /// Shown in metrics, logs and DescribeDeliveryStream (Firehose's EndpointConfiguration.Name).
    pub name: Option<Spanned<String>>,
    /// Sent as X-Amz-Firehose-Access-Key; never logged or described.
    pub access_key: Option<Spanned<String>>,
    /// NONE | GZIP
    pub content_encoding: Option<Spanned<String>>,
    pub common_attributes: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    pub retry_duration_seconds: Option<Spanned<u64>>,
    pub request_timeout_seconds: Option<Spanned<u64>>,
    pub tls: Option<Spanned<RawTls>>,
    /// FailedDataOnly | AllData
    pub s3_backup_mode: Option<Spanned<String>>,
    /// Where failed (or, with AllData, all) records go: an `s3:` or `local:` destination.
    pub backup: Spanned<RawDestination>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file of CA certificates trusted in addition to the system roots.
    pub ca_file: Option<Spanned<String>>,
}
