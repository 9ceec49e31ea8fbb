//! Opening the catalog a destination commits through: Glue (Firehose's; any endpoint, so moto or
//! a Glue-compatible server), an Iceberg REST catalog, or a SQL catalog on PostgreSQL or SQLite
//! (iceberg-rust's `iceberg_tables` layout, which pyiceberg's `SqlCatalog` reads too).
//!
//! The tables' files are read and written through the catalog's `FileIO`: S3-compatible stores
//! (`s3.*` properties from `s3_endpoint`, `region` and the keys) and local paths (`file://`).

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_glue::GlueCatalogBuilder;
use iceberg_catalog_rest::RestCatalogBuilder;
use iceberg_catalog_sql::SqlCatalogBuilder;
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;

use super::config::{CatalogKind, CatalogSpec};

/// The properties iceberg-rust's catalogs and file IO read, from the validated spec.
/// Kept in one place so a secret is placed only where it is needed.
fn properties(spec: &CatalogSpec) -> HashMap<String, String> {
    let mut props: HashMap<String, String> = HashMap::new();
    if let Some(uri) = &spec.uri {
        props.insert("uri".into(), uri.expose().to_string());
    }
    if let Some(w) = &spec.warehouse {
        props.insert("warehouse".into(), w.clone());
    }
    if let Some(id) = &spec.catalog_id {
        props.insert("catalog_id".into(), id.clone());
    }
    let region = spec.region.clone().or_else(|| std::env::var("AWS_REGION").ok());
    if let Some(region) = &region {
        props.insert("s3.region".into(), region.clone());
        props.insert("region_name".into(), region.clone());
    }
    if let Some(endpoint) = &spec.s3_endpoint {
        props.insert("s3.endpoint".into(), endpoint.clone());
        // MinIO, Ceph and moto address buckets by path unless told otherwise.
        props.insert("s3.path-style-access".into(), "true".into());
    }
    if let (Some(key), Some(secret)) = (&spec.access_key_id, &spec.secret_access_key) {
        props.insert("s3.access-key-id".into(), key.clone());
        props.insert("s3.secret-access-key".into(), secret.expose().to_string());
        props.insert("aws_access_key_id".into(), key.clone());
        props.insert("aws_secret_access_key".into(), secret.expose().to_string());
    }
    for (k, v) in &spec.properties {
        props.insert(k.clone(), v.expose().to_string());
    }
    props
}

/// Connects to the catalog. The error says which catalog and why, never a password: iceberg-rust's
/// messages can quote the URI, so a SQL catalog's failure is reduced to its kind and its cause.
pub async fn open(spec: &CatalogSpec) -> Result<Arc<dyn Catalog>, String> {
    let props = properties(spec);
    let files = Arc::new(OpenDalResolvingStorageFactory::new());
    let name = spec.name.clone();
    let opened: Result<Arc<dyn Catalog>, iceberg::Error> = match spec.kind {
        CatalogKind::Sql => {
            SqlCatalogBuilder::default().with_storage_factory(files).load(name, props).await.map(|c| Arc::new(c) as _)
        }
        CatalogKind::Rest => {
            RestCatalogBuilder::default().with_storage_factory(files).load(name, props).await.map(|c| Arc::new(c) as _)
        }
        CatalogKind::Glue => GlueCatalogBuilder::default().load(name, props).await.map(|c| Arc::new(c) as _),
    };
    opened.map_err(|e| {
        let kind = match spec.kind {
            CatalogKind::Sql => "sql",
            CatalogKind::Rest => "rest",
            CatalogKind::Glue => "glue",
        };
        format!("cannot open the {kind} catalog: {}", redact(&brief(&e), spec))
    })
}

/// `message` with every secret of `spec` masked.
pub fn redact(message: &str, spec: &CatalogSpec) -> String {
    let mut out = message.to_string();
    let mut secrets: Vec<&str> = spec.properties.values().map(|s| s.expose()).collect();
    secrets.extend(spec.secret_access_key.as_ref().map(|s| s.expose()));
    if let Some(uri) = &spec.uri {
        if let Ok(url) = reqwest::Url::parse(uri.expose()) {
            if let Some(p) = url.password() {
                out = out.replace(p, "***");
            }
        }
    }
    for s in secrets.into_iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "***");
    }
    out
}

/// An iceberg-rust error in a line a log can hold: its kind, message and first cause (an AWS SDK
/// error's Display is its whole response, headers included, so causes are cut at 300 characters).
pub fn brief(e: &iceberg::Error) -> String {
    use std::error::Error as _;
    let mut out = format!("{} ({})", e.message(), e.kind());
    if let Some(source) = e.source() {
        let cause = source.to_string();
        let cut = cause.char_indices().nth(300).map_or(cause.len(), |(i, _)| i);
        out.push_str(": ");
        out.push_str(&cause[..cut]);
        if cut < cause.len() {
            out.push('…');
        }
    }
    out
}
