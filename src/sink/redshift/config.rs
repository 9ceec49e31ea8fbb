//! `destination: redshift:` as written (Firehose's RedshiftDestinationConfiguration in the config's
//! snake case), its validated form, and the rules between them. A config-layer module: it imports
//! only the config kit, so `config` can list it.

use std::time::Duration;

use serde::Deserialize;

use crate::config::kit::{
    retry_duration, store_destination, Checker, ObjectDestination, PartitionContext, RawObjectStore, Secret, Spanned,
};
use crate::format::compression::Compression;

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

#[derive(Clone, Debug, PartialEq)]
pub struct RedshiftSpec {
    pub cluster_jdbc_url: String,
    pub username: String,
    pub password: Secret,
    pub role_arn: String,
    pub copy: CopySpec,
    pub retry_duration: Duration,
}

/// Firehose's CopyCommand: inserted into the COPY statement as given, as Firehose does.
#[derive(Clone, Debug, PartialEq)]
pub struct CopySpec {
    pub table: String,
    pub columns: Option<String>,
    pub options: Option<String>,
}

/// The intermediate bucket (the pipeline's object store) and the Redshift spec.
pub fn validate(
    c: &mut Checker,
    r: &RawRedshift,
    field: &str,
    partitions: &PartitionContext,
) -> Option<(ObjectDestination, RedshiftSpec)> {
    let before = c.error_count();
    if let Err(why) = JdbcUrl::parse(&r.cluster_jdbc_url.value) {
        c.at(&r.cluster_jdbc_url, &format!("{field}.cluster_jdbc_url"), why);
    }
    if r.username.value.is_empty() {
        c.at(&r.username, &format!("{field}.username"), "must not be empty");
    }
    if !r.role_arn.value.starts_with("arn:") {
        c.at(&r.role_arn, &format!("{field}.role_arn"), "must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)");
    }
    let copy = &r.copy_command.value;
    // Names go into the statement unquoted (schema.table, "Quoted"), as Firehose puts them.
    let identifier = |s: &str, extra: &str| {
        !s.trim().is_empty() && s.chars().all(|ch| ch.is_alphanumeric() || "_$.\"".contains(ch) || extra.contains(ch))
    };
    if !identifier(&copy.data_table_name.value, "") {
        c.at(
            &copy.data_table_name,
            &format!("{field}.copy_command.data_table_name"),
            "must be a table name (letters, digits, `_`, `$`, `schema.table`, \"quoted\")",
        );
    }
    if let Some(columns) = copy.data_table_columns.as_ref().filter(|c| !identifier(&c.value, ", ")) {
        c.at(columns, &format!("{field}.copy_command.data_table_columns"), "must be column names separated by commas");
    }
    if let Some(options) = copy.copy_options.as_ref().filter(|o| o.value.contains(';')) {
        c.at(options, &format!("{field}.copy_command.copy_options"), "must not contain `;` (one COPY statement)");
    }
    let retry = match &r.retry_duration_seconds {
        None => Duration::from_secs(3600),
        some => retry_duration(c, some, field),
    };
    let at = format!("{field}.s3");
    if r.s3.value.path.is_some() || r.s3.value.bucket.is_none() {
        c.at(&r.s3, &at, "must be an S3 bucket (`bucket:`): Redshift's COPY reads the staged batches from S3");
    }
    if r.s3.value.format_conversion.is_some() {
        c.at(
            &r.s3,
            &format!("{at}.format_conversion"),
            "does not apply to Redshift (COPY takes the records as staged)",
        );
    }
    if let Some(comp) =
        r.s3.value.compression.as_ref().filter(|c| !matches!(c.value, Compression::Uncompressed | Compression::Gzip))
    {
        c.at(comp, &format!("{at}.compression"), "must be GZIP or UNCOMPRESSED for Redshift (Firehose rule)");
    }
    if r.s3.value.prefix.as_ref().is_some_and(|p| p.value.contains("!{")) {
        c.at(&r.s3, &format!("{at}.prefix"), "Redshift's intermediate prefix allows no expressions (Firehose rule)");
    }
    let store = store_destination(c, &r.s3, "s3", &r.s3.value, &at, partitions);
    let spec = RedshiftSpec {
        cluster_jdbc_url: r.cluster_jdbc_url.value.clone(),
        username: r.username.value.clone(),
        password: Secret::new(r.password.value.clone()),
        role_arn: r.role_arn.value.clone(),
        copy: CopySpec {
            table: copy.data_table_name.value.trim().to_string(),
            columns: copy.data_table_columns.as_ref().map(|c| c.value.trim().to_string()).filter(|c| !c.is_empty()),
            options: copy.copy_options.as_ref().map(|o| o.value.trim().to_string()).filter(|o| !o.is_empty()),
        },
        retry_duration: retry,
    };
    (c.error_count() == before).then_some(())?;
    Some((store?, spec))
}

/// `jdbc:redshift://host:port/database[?ssl=false&...]`, as Firehose takes the cluster's address.
#[derive(Debug, PartialEq, Eq)]
pub struct JdbcUrl {
    pub host: String,
    pub port: u16,
    pub database: String,
    /// TLS unless `ssl=false` (a cluster reached through a private tunnel, or the tests' fake).
    pub ssl: bool,
}

impl JdbcUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("jdbc:redshift://")
            .ok_or_else(|| "must start with jdbc:redshift:// (the cluster's JDBC URL)".to_string())?;
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, database) = address
            .split_once('/')
            .ok_or_else(|| "must name the database: jdbc:redshift://host:5439/dev".to_string())?;
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("`{p}` is not a port"))?),
            None => (authority, 5439),
        };
        if host.is_empty() || database.is_empty() {
            return Err("must name a host and a database: jdbc:redshift://host:5439/dev".into());
        }
        let ssl = !query.split('&').any(|kv| kv.eq_ignore_ascii_case("ssl=false"));
        Ok(Self { host: host.to_string(), port, database: database.to_string(), ssl })
    }
}
