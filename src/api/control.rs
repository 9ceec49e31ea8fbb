//! The control-plane operations: Create/Delete/UpdateDestination, tags and encryption. Request
//! checks and messages follow the Firehose model (botocore's service-2.json); the daemon
//! (`daemon::control`) stores and applies the change.

use std::sync::Arc;

use axum::body::Bytes;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ok_json, parse, ApiError, ApiState};
use crate::daemon::{ControlError, Daemon};
use crate::stored::translate::{supported_destination, UNSUPPORTED_DESTINATIONS};
use crate::stored::{merge, Encryption, StoredStream, StreamStatus, Tag};

pub const STREAM_TYPES: &[&str] = &["DirectPut", "KinesisStreamAsSource", "MSKAsSource", "DatabaseAsSource"];
const MAX_TAGS: usize = 50;
/// Source configurations, and the stream type each belongs to.
const SOURCES: &[(&str, &str)] = &[
    ("KinesisStreamSourceConfiguration", "KinesisStreamAsSource"),
    ("MSKSourceConfiguration", "MSKAsSource"),
    ("DatabaseSourceConfiguration", "DatabaseAsSource"),
];

fn control_error(e: ControlError) -> ApiError {
    match e {
        ControlError::NotFound(m) => ApiError::ResourceNotFound(m),
        ControlError::InUse(m) => ApiError::ResourceInUse(m),
        ControlError::Invalid(m) => ApiError::InvalidArgument(m),
        ControlError::Limit(m) => ApiError::LimitExceeded(m),
        ControlError::ConcurrentModification(m) => ApiError::ConcurrentModification(m),
        ControlError::Internal(m) => ApiError::InternalFailure(m),
    }
}

fn not_found(state: &ApiState, name: &str) -> ApiError {
    ApiError::ResourceNotFound(state.daemon.not_found(name).to_string())
}

/// The request as a JSON object, with its stream name checked.
fn object_with_name(body: &Bytes) -> Result<(Map<String, Value>, String), ApiError> {
    let value: Value = parse(body)?;
    let Value::Object(object) = value else {
        return Err(ApiError::InvalidArgument("the request body must be a JSON object".into()));
    };
    let name = match object.get("DeliveryStreamName") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(ApiError::Validation(
                "1 validation error detected: Value null at 'deliveryStreamName' failed to satisfy constraint: Member must not be null".into(),
            ))
        }
    };
    super::check_name(&name)?;
    Ok((object, name))
}

pub(super) async fn create(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let (request, name) = object_with_name(body)?;
    let stream_type = request.get("DeliveryStreamType").and_then(Value::as_str).unwrap_or("DirectPut").to_string();
    if !STREAM_TYPES.contains(&stream_type.as_str()) {
        return Err(ApiError::constraint(
            "deliveryStreamType",
            "Member must satisfy enum value set: [DirectPut, KinesisStreamAsSource, MSKAsSource, DatabaseAsSource]",
        ));
    }
    for (source, for_type) in SOURCES {
        if request.contains_key(*source) && stream_type != *for_type {
            let short = source.replace("Configuration", "Config").replace("KinesisStreamSource", "KinesisSourceStream");
            return Err(ApiError::InvalidArgument(format!("{short} is only applicable for {for_type} stream type")));
        }
    }
    let destinations: Vec<&String> =
        request.keys().filter(|k| supported_destination(k) || UNSUPPORTED_DESTINATIONS.contains(&k.as_str())).collect();
    let [destination_key] = destinations.as_slice() else {
        return Err(ApiError::InvalidArgument(
            "Exactly one destination configuration is supported for a Firehose".into(),
        ));
    };
    if let Some(unknown) = request.keys().find(|k| {
        !matches!(
            k.as_str(),
            "DeliveryStreamName" | "DeliveryStreamType" | "Tags" | "DeliveryStreamEncryptionConfigurationInput"
        ) && !supported_destination(k)
            && !UNSUPPORTED_DESTINATIONS.contains(&k.as_str())
            && !SOURCES.iter().any(|(s, _)| s == k)
    }) {
        return Err(ApiError::InvalidArgument(format!("{unknown} is not supported by sluice")));
    }
    let tags = match request.get("Tags") {
        Some(t) => parse_tags(t, "tags")?,
        None => Vec::new(),
    };
    if tags.len() > MAX_TAGS {
        return Err(too_many_tags("tags"));
    }
    let encryption = match request.get("DeliveryStreamEncryptionConfigurationInput") {
        Some(e) => Some(parse_encryption(e)?),
        None => None,
    };
    let now = crate::clock::now_ms();
    let mut source = SOURCES.iter().filter(|(_, t)| *t == stream_type).find_map(|(m, _)| request.get(*m).cloned());
    if let Some(Value::Object(msk)) =
        source.as_mut().filter(|_| stream_type == crate::source::kafka::firehose::STREAM_TYPE)
    {
        // Firehose reads from when the stream became active unless told otherwise; fixed now, so
        // a restart does not move it.
        msk.entry("ReadFromTimestamp").or_insert_with(|| Value::from(now as f64 / 1000.0));
    }
    let stream = StoredStream {
        name: name.clone(),
        stream_type,
        status: StreamStatus::Active,
        force_delete: false,
        created_ms: now,
        updated_ms: now,
        version: 1,
        destination_key: destination_key.to_string(),
        destination: request.get(destination_key.as_str()).cloned().unwrap_or(Value::Null),
        source,
        tags,
        encryption,
    };
    state.daemon.create_stream(stream).await.map_err(control_error)?;
    Ok(ok_json(&serde_json::json!({ "DeliveryStreamARN": state.daemon.identity().stream_arn(&name) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteInput {
    delivery_stream_name: String,
    allow_force_delete: Option<bool>,
}

pub(super) async fn delete(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let input: DeleteInput = parse(body)?;
    super::check_name(&input.delivery_stream_name)?;
    let daemon: &Arc<Daemon> = &state.daemon;
    daemon
        .delete_stream(&input.delivery_stream_name, input.allow_force_delete.unwrap_or(false))
        .await
        .map_err(control_error)?;
    // Firehose deletes in the background; a stream that drains quickly (the usual case) is gone
    // by the time this answers, so a List right after does not show it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while daemon.stored_stream(&input.delivery_stream_name).is_some() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(ok_json(&serde_json::json!({})))
}

pub(super) async fn update(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let (request, name) = object_with_name(body)?;
    let version = request.get("CurrentDeliveryStreamVersionId").and_then(Value::as_str).ok_or_else(|| {
        ApiError::Validation("1 validation error detected: Value null at 'currentDeliveryStreamVersionId' failed to satisfy constraint: Member must not be null".into())
    })?.to_string();
    let destination_id = request.get("DestinationId").and_then(Value::as_str).ok_or_else(|| {
        ApiError::Validation("1 validation error detected: Value null at 'destinationId' failed to satisfy constraint: Member must not be null".into())
    })?.to_string();
    let updates: Vec<(&String, &Value)> = request.iter().filter(|(k, _)| k.ends_with("DestinationUpdate")).collect();
    let [(update_key, update)] = updates.as_slice() else {
        return Err(ApiError::InvalidArgument(
            "Exactly one destination configuration is supported for a Firehose".into(),
        ));
    };
    let new_key = update_key.replace("DestinationUpdate", "DestinationConfiguration");
    if state.daemon.stored_stream(&name).is_none() && state.daemon.get(&name).is_none() {
        return Err(ApiError::ResourceNotFound(format!(
            "Firehose {name} under accountId {} not found.",
            state.daemon.identity().account_id
        )));
    }
    let update = (*update).clone();
    let stream_name = name.clone();
    state
        .daemon
        .change_stream(&stream_name, true, move |s| {
            if s.version.to_string() != version {
                return Err(ControlError::ConcurrentModification(format!(
                    "Cannot update firehose: {name} since the current version id: {} and the specified version id: {version} do not match",
                    s.version
                )));
            }
            if destination_id != "destinationId-000000000001" {
                return Err(ControlError::Invalid(format!("Destination Id {destination_id} not found")));
            }
            let http = |k: &str| k.starts_with("HttpEndpoint");
            if http(&s.destination_key) != http(&new_key) {
                return Err(ControlError::Invalid(
                    "Changing the destination type to or from HttpEndpoint is not supported at this time.".into(),
                ));
            }
            let search = |k: &str| k.starts_with("Amazonopensearchservice") || k.starts_with("Elasticsearch");
            if search(&s.destination_key) != search(&new_key) {
                return Err(ControlError::Invalid(
                    "an OpenSearch or Elasticsearch destination can only be updated to another of its kind".into(),
                ));
            }
            let s3_family = |k: &str| k == "S3DestinationConfiguration" || k == "ExtendedS3DestinationConfiguration";
            if s.destination_key == new_key || (s3_family(&s.destination_key) && s3_family(&new_key)) {
                // Same type (a plain S3 update of an Extended S3 destination included): merge.
                merge(&mut s.destination, &update);
                if new_key == "ExtendedS3DestinationConfiguration" {
                    s.destination_key = new_key;
                }
            } else {
                s.destination_key = new_key;
                s.destination = update;
            }
            s.version += 1;
            Ok(())
        })
        .await
        .map_err(control_error)?;
    Ok(ok_json(&serde_json::json!({})))
}

/// `[{Key, Value}]` with the model's length and pattern rules.
fn parse_tags(value: &Value, member: &str) -> Result<Vec<Tag>, ApiError> {
    let tags: Vec<Tag> = serde_json::from_value(value.clone())
        .map_err(|e| ApiError::InvalidArgument(format!("{member} must be a list of {{Key, Value}}: {e}")))?;
    if tags.len() > MAX_TAGS {
        return Err(too_many_tags(member));
    }
    for (i, t) in tags.iter().enumerate() {
        let valid = |s: &str| s.chars().all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@%".contains(c));
        if t.key.is_empty() || t.key.chars().count() > 128 || !valid(&t.key) || t.key.starts_with("aws:") {
            return Err(ApiError::Validation(format!(
                "1 validation error detected: Value '{}' at '{member}.{}.member.key' failed to satisfy constraint: Member must satisfy regular expression pattern: ^(?!aws:)[\\p{{L}}\\p{{Z}}\\p{{N}}_.:\\/=+\\-@%]*$",
                t.key,
                i + 1
            )));
        }
        if let Some(v) = &t.value {
            if v.chars().count() > 256 || !valid(v) {
                return Err(ApiError::Validation(format!(
                    "1 validation error detected: Value '{v}' at '{member}.{}.member.value' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[\\p{{L}}\\p{{Z}}\\p{{N}}_.:\\/=+\\-@%]*$",
                    i + 1
                )));
            }
        }
    }
    Ok(tags)
}

fn too_many_tags(member: &str) -> ApiError {
    ApiError::Validation(format!(
        "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length less than or equal to {MAX_TAGS}"
    ))
}

fn parse_encryption(value: &Value) -> Result<Encryption, ApiError> {
    let key_type = value.get("KeyType").and_then(Value::as_str).ok_or_else(|| {
        ApiError::Validation("1 validation error detected: Value null at 'deliveryStreamEncryptionConfigurationInput.keyType' failed to satisfy constraint: Member must not be null".into())
    })?;
    let key_arn = value.get("KeyARN").and_then(Value::as_str).map(str::to_string);
    match (key_type, &key_arn) {
        ("AWS_OWNED_CMK", None) | ("CUSTOMER_MANAGED_CMK", Some(_)) => {}
        ("AWS_OWNED_CMK", Some(_)) => {
            return Err(ApiError::InvalidArgument("KeyARN must not be given with KeyType AWS_OWNED_CMK".into()))
        }
        ("CUSTOMER_MANAGED_CMK", None) => {
            return Err(ApiError::InvalidArgument("KeyARN is required with KeyType CUSTOMER_MANAGED_CMK".into()))
        }
        _ => {
            return Err(ApiError::constraint(
                "deliveryStreamEncryptionConfigurationInput.keyType",
                "Member must satisfy enum value set: [AWS_OWNED_CMK, CUSTOMER_MANAGED_CMK]",
            ))
        }
    }
    Ok(Encryption { key_type: key_type.to_string(), key_arn, enabled: true })
}

/// A stream that is known but not API-created gets the daemon's explanation; an unknown one
/// ResourceNotFound.
async fn change(
    state: &ApiState,
    name: &str,
    restart: bool,
    f: impl FnOnce(&mut StoredStream) -> Result<(), ControlError>,
) -> Result<StoredStream, ApiError> {
    if state.daemon.stored_stream(name).is_none() && state.daemon.get(name).is_none() {
        return Err(not_found(state, name));
    }
    state.daemon.change_stream(name, restart, f).await.map_err(control_error)
}

pub(super) async fn tag(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let (request, name) = object_with_name(body)?;
    let tags = parse_tags(request.get("Tags").unwrap_or(&Value::Null), "tags")?;
    if tags.is_empty() {
        return Err(ApiError::constraint("tags", "Member must have length greater than or equal to 1"));
    }
    change(state, &name, false, |s| {
        for tag in tags {
            match s.tags.iter_mut().find(|t| t.key == tag.key) {
                Some(existing) => existing.value = tag.value,
                None => s.tags.push(tag),
            }
        }
        if s.tags.len() > MAX_TAGS {
            return Err(ControlError::Limit(format!("a delivery stream can have at most {MAX_TAGS} tags")));
        }
        Ok(())
    })
    .await?;
    Ok(ok_json(&serde_json::json!({})))
}

pub(super) async fn untag(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let (request, name) = object_with_name(body)?;
    let keys: Vec<String> = request
        .get("TagKeys")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .ok_or_else(|| ApiError::Validation("1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null".into()))?;
    if keys.is_empty() || keys.len() > MAX_TAGS {
        return Err(ApiError::constraint("tagKeys", "Member must have length between 1 and 50"));
    }
    change(state, &name, false, |s| {
        s.tags.retain(|t| !keys.contains(&t.key));
        Ok(())
    })
    .await?;
    Ok(ok_json(&serde_json::json!({})))
}

pub(super) fn list_tags(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let (request, name) = object_with_name(body)?;
    let limit = request.get("Limit").and_then(Value::as_i64).unwrap_or(50);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::constraint("limit", "Member must have value between 1 and 50"));
    }
    let start = request.get("ExclusiveStartTagKey").and_then(Value::as_str);
    let tags = match state.daemon.stored_stream(&name) {
        Some(s) => s.tags,
        None if state.daemon.get(&name).is_some() => Vec::new(),
        None => return Err(not_found(state, &name)),
    };
    // A start key that is not a tag starts from the beginning, as Firehose does.
    let after: Vec<Tag> = match start.and_then(|key| tags.iter().position(|t| t.key == key)) {
        Some(at) => tags[at + 1..].to_vec(),
        None => tags,
    };
    let has_more = after.len() > limit as usize;
    let page: Vec<Tag> = after.into_iter().take(limit as usize).collect();
    Ok(ok_json(&serde_json::json!({ "Tags": page, "HasMoreTags": has_more })))
}

pub(super) async fn start_encryption(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let (request, name) = object_with_name(body)?;
    let encryption = match request.get("DeliveryStreamEncryptionConfigurationInput") {
        Some(e) => parse_encryption(e)?,
        None => Encryption { key_type: "AWS_OWNED_CMK".into(), key_arn: None, enabled: true },
    };
    change(state, &name, true, |s| {
        s.encryption = Some(encryption);
        Ok(())
    })
    .await?;
    Ok(ok_json(&serde_json::json!({})))
}

pub(super) async fn stop_encryption(state: &ApiState, body: &Bytes) -> Result<Response, ApiError> {
    let (_, name) = object_with_name(body)?;
    change(state, &name, true, |s| {
        match &mut s.encryption {
            Some(e) => e.enabled = false,
            None => s.encryption = Some(Encryption { key_type: "AWS_OWNED_CMK".into(), key_arn: None, enabled: false }),
        }
        Ok(())
    })
    .await?;
    Ok(ok_json(&serde_json::json!({})))
}
