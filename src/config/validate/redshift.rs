//! Validation of `redshift:` (Firehose's RedshiftDestinationConfiguration).

use super::*;
use crate::config::RawRedshift;

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
pub(super) fn redshift(
    c: &mut Checker,
    r: &RawRedshift,
    field: &str,
    partitions: &PartitionContext,
) -> Option<(ObjectDestination, EndpointSpec)> {
    let before = c.errors.len();
    if let Err(why) = crate::sink::redshift::JdbcUrl::parse(&r.cluster_jdbc_url.value) {
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
        some => super::endpoint::retry_duration(c, some, field),
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
    let store = super::destination::store_destination(c, &r.s3, "s3", &r.s3.value, &at, partitions);
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
    (c.errors.len() == before).then_some(())?;
    Some((store?, EndpointSpec::Redshift(spec)))
}
