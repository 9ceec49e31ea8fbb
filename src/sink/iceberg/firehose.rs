//! Iceberg in Firehose's API: `IcebergDestinationConfiguration` (CreateDeliveryStream) → an
//! `iceberg:` block, and an `IcebergSpec` → `IcebergDestinationDescription`. A config-layer module.
//!
//! Firehose names its catalog by ARN (`CatalogConfiguration.CatalogARN`, a Glue catalog);
//! `control_plane.iceberg_catalogs` says what that ARN is here (a `catalog:` block: Glue at an
//! endpoint, REST or SQL), with `"*"` for every ARN not named. Routing by JSONQuery is Firehose's
//! `MetadataExtraction` processor with a query giving `destinationDatabaseName`,
//! `destinationTableName` and `operation`: it becomes `routing:`.

use serde_json::{json, Map, Value};

use super::config::{CatalogKind, IcebergSpec};
use crate::config::control_plane::ControlPlane;
use crate::config::kit::firehose::{endpoint_common, refuse, Members, Result, TranslateError, Translated};
use crate::config::kit::{DeliveryMetric, DescribeContext};

/// Its delivery metrics (`sluice_delivery_to_iceberg_*`).
pub const METRIC: DeliveryMetric = DeliveryMetric {
    name: "iceberg",
    firehose: "DeliveryToIceberg",
    delivered: "rows committed to Iceberg tables (each batch once)",
};

pub const MEMBER: &str = "IcebergDestinationConfiguration";

const MEMBERS: &[&str] = &[
    "DestinationTableConfigurationList",
    "SchemaEvolutionConfiguration",
    "TableCreationConfiguration",
    "BufferingHints",
    "CloudWatchLoggingOptions",
    "ProcessingConfiguration",
    "S3BackupMode",
    "RetryOptions",
    "RoleARN",
    "AppendOnly",
    "CatalogConfiguration",
    "S3Configuration",
];

/// What a `CatalogARN` stands for when the control plane does not say.
const NO_CATALOG: &str = "names a catalog that control_plane.iceberg_catalogs does not map (add the ARN, or \"*\", \
                          with a catalog block: { type: glue, uri: <endpoint> } or a sql/rest catalog)";

pub fn translate<'a>(config: &'a Value, control: &ControlPlane) -> Result<Translated<'a>> {
    let m = Members::of(config, MEMBER, MEMBERS)?;
    let mut d = Map::new();
    let catalog = m
        .get("CatalogConfiguration")
        .ok_or_else(|| TranslateError(format!("{} is required", m.child("CatalogConfiguration"))))?;
    let c = Members::of(catalog, &m.child("CatalogConfiguration"), &["CatalogARN", "WarehouseLocation"])?;
    let arn = c.required_str("CatalogARN")?;
    let Some(mapped) = control.iceberg_catalogs.get(arn).or_else(|| control.iceberg_catalogs.get("*")) else {
        return refuse(format!("{} `{arn}` {NO_CATALOG}", c.child("CatalogARN")));
    };
    let mut block = mapped.clone();
    if let (Some(w), Some(o)) = (c.str("WarehouseLocation")?, block.as_object_mut()) {
        o.insert("warehouse".into(), w.into());
    }
    d.insert("catalog".into(), block);
    let mut tables = Vec::new();
    let list = m.get("DestinationTableConfigurationList").and_then(Value::as_array);
    for (i, t) in list.into_iter().flatten().enumerate() {
        let at = format!("{}[{i}]", m.child("DestinationTableConfigurationList"));
        let t = Members::of(
            t,
            &at,
            &["DestinationDatabaseName", "DestinationTableName", "UniqueKeys", "PartitionSpec", "S3ErrorOutputPrefix"],
        )?;
        let mut entry = Map::new();
        entry.insert("database".into(), t.required_str("DestinationDatabaseName")?.into());
        entry.insert("table".into(), t.required_str("DestinationTableName")?.into());
        if let Some(keys) = t.get("UniqueKeys").and_then(Value::as_array).filter(|k| !k.is_empty()) {
            entry.insert("unique_keys".into(), Value::Array(keys.clone()));
        }
        if let Some(spec) = t.get("PartitionSpec") {
            let spec = Members::of(spec, &t.child("PartitionSpec"), &["Identity"])?;
            let mut names = Vec::new();
            for field in spec.get("Identity").and_then(Value::as_array).into_iter().flatten() {
                let field = Members::of(field, &spec.child("Identity"), &["SourceName"])?;
                names.push(Value::from(field.required_str("SourceName")?));
            }
            entry.insert("partition_by".into(), Value::Array(names));
        }
        if t.str("S3ErrorOutputPrefix")?.is_some() {
            return refuse(format!(
                "{at}.S3ErrorOutputPrefix: per-table error prefixes are not supported by sluice; set ErrorOutputPrefix in S3Configuration"
            ));
        }
        tables.push(Value::Object(entry));
    }
    // One table and no routing: it is the table every record goes to.
    if let [only] = &tables[..] {
        d.insert("database".into(), only["database"].clone());
        d.insert("table".into(), only["table"].clone());
    }
    if !tables.is_empty() {
        d.insert("tables".into(), Value::Array(tables));
    }
    let enabled = |member: &str| -> Result<Option<bool>> {
        match m.get(member) {
            Some(v) => Members::of(v, &m.child(member), &["Enabled"])?.bool("Enabled"),
            None => Ok(None),
        }
    };
    if let Some(e) = enabled("SchemaEvolutionConfiguration")? {
        d.insert("schema_evolution".into(), e.into());
    }
    if let Some(e) = enabled("TableCreationConfiguration")? {
        d.insert("create_tables".into(), e.into());
    }
    if let Some(a) = m.bool("AppendOnly")? {
        d.insert("append_only".into(), a.into());
    }
    endpoint_common(&m, &mut d, control, "FailedDataOnly")?;
    let mut translated = m.translated(Value::Null);
    if let Some((query, only)) = routing_query(m.get("ProcessingConfiguration")) {
        d.insert("routing".into(), query.into());
        if only {
            translated.processing = None;
        }
    }
    translated.destination = json!({ "iceberg": d });
    Ok(translated)
}

/// The `MetadataExtraction` query in a processing configuration, and whether it is the only
/// processor (then the processing configuration has nothing else to run).
fn routing_query(processing: Option<&Value>) -> Option<(String, bool)> {
    let processors = processing?.get("Processors")?.as_array()?;
    let query = processors.iter().find(|p| p.get("Type").and_then(Value::as_str) == Some("MetadataExtraction"))?;
    let value = query.get("Parameters")?.as_array()?.iter().find_map(|p| {
        (p.get("ParameterName").and_then(Value::as_str) == Some("MetadataExtractionQuery"))
            .then(|| p.get("ParameterValue").and_then(Value::as_str))
            .flatten()
    })?;
    Some((value.to_string(), processors.len() == 1))
}

/// The catalog's secrets (keys, a URI with a password) are never described.
pub fn describe(i: &IcebergSpec, ctx: &DescribeContext) -> (&'static str, Value) {
    let region = i.catalog.region.as_deref().unwrap_or("us-east-1");
    let catalog_arn = match i.catalog.kind {
        CatalogKind::Glue => {
            format!("arn:aws:glue:{region}:{}:catalog", i.catalog.catalog_id.as_deref().unwrap_or("000000000000"))
        }
        // Not Firehose's: sluice's own catalogs, named so that the kind shows.
        CatalogKind::Rest => format!("arn:sluice:iceberg:{region}::catalog/rest/{}", i.catalog.name),
        CatalogKind::Sql => format!("arn:sluice:iceberg:{region}::catalog/sql/{}", i.catalog.name),
    };
    let tables: Vec<Value> = i
        .tables
        .iter()
        .map(|t| {
            json!({
                "DestinationDatabaseName": t.database,
                "DestinationTableName": t.table,
                "PartitionSpec": { "Identity": t.partition_by.iter().map(|s| json!({ "SourceName": s })).collect::<Vec<_>>() },
            })
        })
        .collect();
    let tables = match (tables.is_empty(), &i.database, &i.table) {
        (true, Some(d), Some(t)) => vec![json!({ "DestinationDatabaseName": d, "DestinationTableName": t })],
        _ => tables,
    };
    let description = json!({
        "DestinationTableConfigurationList": tables,
        "CatalogConfiguration": { "CatalogARN": catalog_arn, "WarehouseLocation": i.catalog.warehouse },
        "SchemaEvolutionConfiguration": { "Enabled": i.schema_evolution },
        "TableCreationConfiguration": { "Enabled": i.create_tables },
        "AppendOnly": i.append_only,
        "RetryOptions": { "DurationInSeconds": i.retry_duration.as_secs() },
        "S3BackupMode": if i.backup_all { "AllData" } else { "FailedDataOnly" },
        "S3DestinationDescription": ctx.backup,
        "ProcessingConfiguration": ctx.processing,
        "CloudWatchLoggingOptions": { "Enabled": false },
        "BufferingHints": ctx.buffering,
        "RoleARN": ctx.role_arn,
    });
    ("IcebergDestinationDescription", description)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::control_plane::BucketTarget;

    fn control() -> ControlPlane {
        ControlPlane {
            buckets: [("*".to_string(), BucketTarget::Local { path: "./b/{bucket}".into() })].into(),
            iceberg_catalogs: [("*".to_string(), json!({ "type": "glue", "uri": "http://127.0.0.1:5000" }))].into(),
            ..ControlPlane::default()
        }
    }

    fn request() -> Value {
        json!({
            "DestinationTableConfigurationList": [{
                "DestinationDatabaseName": "web", "DestinationTableName": "clicks",
                "PartitionSpec": { "Identity": [{ "SourceName": "country" }] },
            }],
            "CatalogConfiguration": { "CatalogARN": "arn:aws:glue:us-east-1:123456789012:catalog",
                                      "WarehouseLocation": "s3://lake/w" },
            "SchemaEvolutionConfiguration": { "Enabled": true },
            "TableCreationConfiguration": { "Enabled": true },
            "AppendOnly": true,
            "ProcessingConfiguration": { "Enabled": true, "Processors": [{ "Type": "MetadataExtraction", "Parameters": [
                { "ParameterName": "MetadataExtractionQuery", "ParameterValue": "{destinationTableName: .t}" },
                { "ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6" }] }] },
            "RoleARN": "arn:aws:iam::123456789012:role/r",
            "S3Configuration": { "RoleARN": "r", "BucketARN": "arn:aws:s3:::errors" },
        })
    }

    #[test]
    fn an_iceberg_configuration_becomes_an_iceberg_block_with_its_routing_query() {
        let request = request();
        let t = translate(&request, &control()).unwrap();
        let d = &t.destination["iceberg"];
        assert_eq!(d["catalog"], json!({ "type": "glue", "uri": "http://127.0.0.1:5000", "warehouse": "s3://lake/w" }));
        assert_eq!((&d["database"], &d["table"]), (&json!("web"), &json!("clicks")));
        assert_eq!(d["tables"][0]["partition_by"], json!(["country"]));
        assert_eq!(
            (&d["schema_evolution"], &d["create_tables"], &d["append_only"]),
            (&json!(true), &json!(true), &json!(true))
        );
        assert_eq!(d["routing"], "{destinationTableName: .t}");
        assert!(t.processing.is_none(), "the metadata extraction became the routing; nothing else to run");
        assert_eq!(d["backup"], json!({ "local": { "path": "./b/errors" } }));
    }

    #[test]
    fn unique_keys_pass_through_to_be_refused_and_an_unmapped_catalog_is_refused() {
        let mut with_keys = request();
        with_keys["DestinationTableConfigurationList"][0]["UniqueKeys"] = json!(["id"]);
        let t = translate(&with_keys, &control()).unwrap();
        assert_eq!(t.destination["iceberg"]["tables"][0]["unique_keys"], json!(["id"]));
        let unmapped = ControlPlane { iceberg_catalogs: Default::default(), ..control() };
        let request = request();
        let Err(e) = translate(&request, &unmapped) else { panic!("an unmapped catalog was accepted") };
        assert!(e.0.contains("control_plane.iceberg_catalogs"), "{}", e.0);
    }
}
