//! The DynamoDB lease table's items and the five calls made on it (DescribeTable, CreateTable,
//! Scan, PutItem, UpdateItem), over AWS JSON 1.0.
//!
//! One item per shard, in the KCL's shape so the table reads familiarly: `leaseKey` (the shard
//! id), `leaseOwner` (absent when free), `leaseCounter` (bumped on every renewal: a counter that
//! stops moving means a dead owner), `checkpoint` and `parentShardId`. `checkpoint` is a sequence
//! number, `SHARD_END`, or where a lease nobody has read yet starts: `TRIM_HORIZON` or
//! `AT_TIMESTAMP:<ms since the epoch>` (LATEST is pinned to the time the lease was made, so no
//! daemon skips what arrived before it first read). sluice adds `handoffTo`: another daemon asks
//! for the lease, and the owner hands it over once what it read is delivered (no duplicates when
//! the load is rebalanced, which the KCL's stealing does not give).

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::aws::request::{AwsCallError, AwsJsonClient, JSON_1_0};

pub const SHARD_END: &str = "SHARD_END";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub shard: String,
    pub owner: Option<String>,
    pub counter: u64,
    pub checkpoint: Option<String>,
    pub parents: Vec<String>,
    pub handoff_to: Option<String>,
}

impl Lease {
    pub fn finished(&self) -> bool {
        self.checkpoint.as_deref() == Some(SHARD_END)
    }

    fn from_item(item: &Map<String, Value>) -> Option<Lease> {
        let s = |name: &str| item.get(name).and_then(|v| v.get("S")).and_then(Value::as_str).map(str::to_string);
        let counter = item.get("leaseCounter").and_then(|v| v.get("N")).and_then(Value::as_str)?.parse().ok()?;
        let parents = item
            .get("parentShardId")
            .and_then(|v| v.get("SS"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        Some(Lease {
            shard: s("leaseKey")?,
            owner: s("leaseOwner"),
            counter,
            checkpoint: s("checkpoint"),
            parents,
            handoff_to: s("handoffTo"),
        })
    }
}

/// A conditional write's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Done,
    /// The condition did not hold: someone else changed the lease first.
    Refused,
}

pub struct LeaseTable {
    aws: AwsJsonClient,
    pub name: String,
}

impl LeaseTable {
    pub fn new(name: &str, endpoint: Option<&str>, region: &str) -> Result<Self, AwsCallError> {
        Ok(Self {
            aws: AwsJsonClient::new(endpoint, region, "dynamodb", (JSON_1_0, "DynamoDB_20120810"))?,
            name: name.to_string(),
        })
    }

    /// Creates the table (on demand capacity, key `leaseKey`) unless it exists, and waits until
    /// it is ACTIVE.
    pub async fn ensure(&self) -> Result<(), AwsCallError> {
        let described = self.aws.call("DescribeTable", &json!({ "TableName": self.name })).await;
        match described {
            Ok(_) => {}
            Err(AwsCallError::Service { kind, .. }) if kind == "ResourceNotFoundException" => {
                let create = json!({
                    "TableName": self.name,
                    "AttributeDefinitions": [{ "AttributeName": "leaseKey", "AttributeType": "S" }],
                    "KeySchema": [{ "AttributeName": "leaseKey", "KeyType": "HASH" }],
                    "BillingMode": "PAY_PER_REQUEST",
                });
                match self.aws.call("CreateTable", &create).await {
                    Ok(_) => tracing::info!(table = %self.name, "created the lease table"),
                    // Another daemon created it first.
                    Err(AwsCallError::Service { kind, .. }) if kind == "ResourceInUseException" => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        loop {
            let out = self.aws.call("DescribeTable", &json!({ "TableName": self.name })).await?;
            if out.pointer("/Table/TableStatus").and_then(Value::as_str) == Some("ACTIVE") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every lease (all pages, strongly consistent).
    pub async fn scan(&self) -> Result<Vec<Lease>, AwsCallError> {
        let mut leases = Vec::new();
        let mut start: Option<Value> = None;
        loop {
            let mut body = json!({ "TableName": self.name, "ConsistentRead": true });
            if let (Some(o), Some(key)) = (body.as_object_mut(), start.take()) {
                o.insert("ExclusiveStartKey".into(), key);
            }
            let page = self.aws.call("Scan", &body).await?;
            if let Some(items) = page.get("Items").and_then(Value::as_array) {
                leases.extend(items.iter().filter_map(Value::as_object).filter_map(Lease::from_item));
            }
            match page.get("LastEvaluatedKey") {
                Some(key) if !key.is_null() => start = Some(key.clone()),
                _ => return Ok(leases),
            }
        }
    }

    /// Adds a free lease for a shard unless one exists.
    pub async fn create(&self, shard: &str, checkpoint: &str, parents: &[String]) -> Result<Written, AwsCallError> {
        let mut item = json!({
            "leaseKey": { "S": shard },
            "leaseCounter": { "N": "0" },
            "checkpoint": { "S": checkpoint },
        });
        if let (Some(o), false) = (item.as_object_mut(), parents.is_empty()) {
            o.insert("parentShardId".into(), json!({ "SS": parents }));
        }
        let body = json!({
            "TableName": self.name,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(leaseKey)",
        });
        conditional(self.aws.call("PutItem", &body).await)
    }

    /// Deletes a finished lease (its checkpoint is `SHARD_END`); any other is left alone.
    pub async fn delete_finished(&self, shard: &str) -> Result<Written, AwsCallError> {
        let body = json!({
            "TableName": self.name,
            "Key": { "leaseKey": { "S": shard } },
            "ConditionExpression": "checkpoint = :end",
            "ExpressionAttributeValues": { ":end": s(SHARD_END) },
        });
        conditional(self.aws.call("DeleteItem", &body).await)
    }

    /// One conditional update of a lease; `values` are the expression's `:names`.
    pub async fn update(
        &self,
        shard: &str,
        update: &str,
        condition: &str,
        values: Value,
    ) -> Result<Written, AwsCallError> {
        let mut body = json!({
            "TableName": self.name,
            "Key": { "leaseKey": { "S": shard } },
            "UpdateExpression": update,
            "ConditionExpression": condition,
        });
        if let (Some(o), false) = (body.as_object_mut(), values.as_object().is_none_or(Map::is_empty)) {
            o.insert("ExpressionAttributeValues".into(), values);
        }
        conditional(self.aws.call("UpdateItem", &body).await)
    }
}

fn conditional(result: Result<Value, AwsCallError>) -> Result<Written, AwsCallError> {
    match result {
        Ok(_) => Ok(Written::Done),
        Err(AwsCallError::Service { kind, .. }) if kind == "ConditionalCheckFailedException" => Ok(Written::Refused),
        Err(e) => Err(e),
    }
}

/// A string attribute value.
pub fn s(value: &str) -> Value {
    json!({ "S": value })
}

/// A number attribute value.
pub fn n(value: u64) -> Value {
    json!({ "N": value.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_in_the_kcl_shape_is_read() {
        let item = json!({
            "leaseKey": { "S": "shardId-000000000001" },
            "leaseOwner": { "S": "host-a" },
            "leaseCounter": { "N": "17" },
            "checkpoint": { "S": "49590338271490256608559692538361571095921575989136588898" },
            "parentShardId": { "SS": ["shardId-000000000000"] },
        });
        let lease = Lease::from_item(item.as_object().unwrap()).unwrap();
        assert_eq!(lease.shard, "shardId-000000000001");
        assert_eq!(lease.owner.as_deref(), Some("host-a"));
        assert_eq!(lease.counter, 17);
        assert_eq!(lease.parents, vec!["shardId-000000000000".to_string()]);
        assert!(!lease.finished());
        assert_eq!(lease.handoff_to, None);
    }

    #[test]
    fn an_item_without_a_counter_is_not_a_lease() {
        let item = json!({ "leaseKey": { "S": "x" } });
        assert_eq!(Lease::from_item(item.as_object().unwrap()), None);
    }
}
