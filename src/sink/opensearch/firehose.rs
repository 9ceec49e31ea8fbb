//! OpenSearch and Elasticsearch in Firehose's API: `AmazonopensearchserviceDestinationConfiguration`
//! and `ElasticsearchDestinationConfiguration` (CreateDeliveryStream) → an `opensearch:` or
//! `elasticsearch:` block, and a `SearchSpec` → its `…DestinationDescription`. A config-layer module.

use serde_json::{json, Map, Value};

use super::config::SearchSpec;
use crate::config::control_plane::ControlPlane;
use crate::config::kit::firehose::{endpoint_common, refuse, Members, Result, Translated};
use crate::config::kit::{DeliveryMetric, DescribeContext};

/// Its delivery metrics (`sluice_delivery_to_amazon_opensearch_service_*`).
pub const METRIC: DeliveryMetric = DeliveryMetric {
    name: "amazon_opensearch_service",
    firehose: "DeliveryToAmazonOpenSearchService",
    delivered: "documents OpenSearch/Elasticsearch indexed (item status 2xx)",
};

pub const MEMBER: &str = "AmazonopensearchserviceDestinationConfiguration";
pub const ELASTICSEARCH_MEMBER: &str = "ElasticsearchDestinationConfiguration";

const MEMBERS: &[&str] = &[
    "RoleARN",
    "DomainARN",
    "ClusterEndpoint",
    "IndexName",
    "TypeName",
    "IndexRotationPeriod",
    "BufferingHints",
    "RetryOptions",
    "S3BackupMode",
    "S3Configuration",
    "ProcessingConfiguration",
    "CloudWatchLoggingOptions",
    "DocumentIdOptions",
];

/// `member` is [`MEMBER`] or [`ELASTICSEARCH_MEMBER`].
pub fn translate<'a>(config: &'a Value, member: &str, control: &ControlPlane) -> Result<Translated<'a>> {
    let m = Members::of(config, member, MEMBERS)?;
    let Some(cluster) = m.str("ClusterEndpoint")? else {
        return refuse(format!(
            "{} is required: sluice cannot resolve a DomainARN to an address, so give the cluster's URL",
            m.child("ClusterEndpoint")
        ));
    };
    let mut d = Map::new();
    d.insert("endpoint".into(), cluster.into());
    d.insert("index".into(), m.required_str("IndexName")?.into());
    if let Some(r) = m.str("IndexRotationPeriod")? {
        d.insert("index_rotation".into(), r.into());
    }
    if let Some(t) = m.str("TypeName")? {
        d.insert("type_name".into(), t.into());
    }
    if let Some(ids) = m.get("DocumentIdOptions") {
        let ids = Members::of(ids, &m.child("DocumentIdOptions"), &["DefaultDocumentIdFormat"])?;
        d.insert("document_id".into(), ids.required_str("DefaultDocumentIdFormat")?.into());
    }
    endpoint_common(&m, &mut d, control, "FailedDocumentsOnly")?;
    let kind = if member == ELASTICSEARCH_MEMBER { "elasticsearch" } else { "opensearch" };
    Ok(m.translated(json!({ kind: d })))
}

/// Firehose's `AmazonopensearchserviceDestinationDescription` / `ElasticsearchDestinationDescription`
/// (credentials are never described).
pub fn describe(s: &SearchSpec, ctx: &DescribeContext) -> (&'static str, Value) {
    let mut d = json!({
        "RoleARN": ctx.role_arn,
        "ClusterEndpoint": s.endpoint,
        "IndexName": s.index,
        "IndexRotationPeriod": s.rotation.name(),
        "BufferingHints": ctx.buffering,
        "RetryOptions": { "DurationInSeconds": s.retry_duration.as_secs() },
        "S3BackupMode": if s.backup_all { "AllDocuments" } else { "FailedDocumentsOnly" },
        "S3DestinationDescription": ctx.backup,
        "ProcessingConfiguration": ctx.processing,
        "CloudWatchLoggingOptions": { "Enabled": false },
        "DocumentIdOptions": {
            "DefaultDocumentIdFormat": if s.document_ids { "FIREHOSE_DEFAULT" } else { "NO_DOCUMENT_ID" },
        },
    });
    if let (Some(t), Some(obj)) = (&s.type_name, d.as_object_mut()) {
        obj.insert("TypeName".into(), t.clone().into());
    }
    let key = if s.elasticsearch {
        "ElasticsearchDestinationDescription"
    } else {
        "AmazonopensearchserviceDestinationDescription"
    };
    (key, d)
}
