//! Dynamic partitioning: which buffer a record goes to.
//!
//! With dynamic partitioning each distinct set of partition-key values used in the prefix gets its
//! own buffer (Firehose: one buffer per evaluated prefix). Without it every record shares one.
//!
//! **Partition values are validated, not escaped.** A value containing `/` or `\`, a control
//! character, `.` or `..`, an empty string, or more than 256 characters is refused and the record
//! goes to the error output with `DynamicPartitioning.InvalidPartitionKeyValue`. Rejecting keeps
//! the property simple to state and to test: a key produced from record data can never add a path
//! level, climb out of the prefix (`../../etc` on a local destination), or collide with another
//! value the way an escaped `a%2Fb` would with a literal `a%2Fb`. The record keeps its raw bytes in
//! the error output, so nothing is lost.

use crate::buffer::PartitionKey;
use crate::format::object_key::{KeyTemplate, PartitionSource};
use crate::process::{Item, PartitionKeys};

pub const CODE_MISSING: &str = "DynamicPartitioning.MetadataExtractionFailed";
pub const CODE_INVALID: &str = "DynamicPartitioning.InvalidPartitionKeyValue";
pub const CODE_EXCEEDED: &str = "DynamicPartitioning.PartitionCountExceeded";
pub const MAX_VALUE_CHARS: usize = 256;

pub struct Partitioner {
    used: Vec<(PartitionSource, String)>,
    /// Plugin (`partitionKeyFromLambda`) keys that split batches when a record has them, for a
    /// destination that routes each batch by them (Iceberg's table names); no prefix uses them.
    routed: Vec<String>,
    /// Keys seen recently, so a record of a known partition costs no allocation.
    interned: std::collections::HashMap<Box<str>, PartitionKey, foldhash::fast::RandomState>,
    scratch: String,
}

/// Interned keys kept at most; past it the cache starts over (high-cardinality keys over days
/// must not grow memory).
const MAX_INTERNED: usize = 10_000;

impl Partitioner {
    /// `prefix` is the destination's effective prefix; only keys it uses partition the data.
    pub fn new(prefix: &KeyTemplate) -> Self {
        Self {
            used: prefix.partition_keys().map(|(s, k)| (s.clone(), k.to_string())).collect(),
            routed: Vec::new(),
            interned: Default::default(),
            scratch: String::new(),
        }
    }

    /// Also splits batches by these plugin keys, where records have them (a record without one
    /// is not refused: the destination's default applies).
    pub fn routed_by(mut self, keys: &[&str]) -> Self {
        self.routed = keys.iter().map(|k| k.to_string()).collect();
        self
    }

    pub fn is_partitioned(&self) -> bool {
        !self.used.is_empty() || !self.routed.is_empty()
    }

    /// The partition a record belongs to, or `(errorCode, message)` saying why it has none.
    pub fn key(&self, item: &Item) -> Result<PartitionKey, (&'static str, String)> {
        let mut canonical = String::new();
        Self::canonical(&self.used, &self.routed, item, &mut canonical)?;
        Ok(PartitionKey::from(canonical))
    }

    /// [`Partitioner::key`], reusing the key of a partition seen before (no allocation).
    pub fn key_interned(&mut self, item: &Item) -> Result<PartitionKey, (&'static str, String)> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let built = Self::canonical(&self.used, &self.routed, item, &mut scratch);
        let key = built.map(|()| match self.interned.get(scratch.as_str()) {
            Some(key) => key.clone(),
            None => {
                if self.interned.len() >= MAX_INTERNED {
                    self.interned.clear();
                }
                let key = PartitionKey::from(scratch.as_str());
                self.interned.insert(scratch.as_str().into(), key.clone());
                key
            }
        });
        self.scratch = scratch;
        key
    }

    /// Writes the record's canonical partition text (every used key's source, name and value).
    fn canonical(
        used: &[(PartitionSource, String)],
        routed: &[String],
        item: &Item,
        canonical: &mut String,
    ) -> Result<(), (&'static str, String)> {
        if used.is_empty() && (routed.is_empty() || item.keys.is_none()) {
            return Ok(());
        }
        let empty = PartitionKeys::default();
        let keys = item.keys.as_deref().unwrap_or(&empty);
        for (source, name) in used {
            let (map, label) = match source {
                PartitionSource::Query => (&keys.query, "partitionKeyFromQuery"),
                PartitionSource::Lambda => (&keys.lambda, "partitionKeyFromLambda"),
            };
            let Some(value) = map.get(name) else {
                return Err((
                    CODE_MISSING,
                    format!("the prefix uses !{{{label}:{name}}} but the record produced no `{name}` key"),
                ));
            };
            check_value(value)
                .map_err(|why| (CODE_INVALID, format!("partition key `{name}` value {value:?} {why}")))?;
            canonical.push_str(label);
            canonical.push(':');
            canonical.push_str(name);
            canonical.push('=');
            canonical.push_str(value);
            canonical.push('\u{1f}');
        }
        for name in routed {
            if let Some(value) = keys.lambda.get(name) {
                check_value(value)
                    .map_err(|why| (CODE_INVALID, format!("partition key `{name}` value {value:?} {why}")))?;
                canonical.push_str("route:");
                canonical.push_str(name);
                canonical.push('=');
                canonical.push_str(value);
                canonical.push('\u{1f}');
            }
        }
        Ok(())
    }
}

/// Gives every output its own bytes, so that no partition buffer keeps a whole WAL frame alive:
/// the outputs of one partition in one read share a single new allocation (a per-record copy
/// made allocation and free a tenth of a partitioned pipeline's CPU). A chunk is referenced only
/// by records of its partition, so it lives no longer than they do, give or take one batch cut.
pub fn copy_per_partition(items: &mut [(Item, PartitionKey)]) {
    use std::collections::HashMap;
    let mut sizes: HashMap<&PartitionKey, usize, foldhash::fast::RandomState> = HashMap::default();
    for (item, key) in items.iter() {
        *sizes.entry(key).or_default() += item.record.data.len();
    }
    let mut chunks: HashMap<PartitionKey, bytes::BytesMut, foldhash::fast::RandomState> =
        sizes.into_iter().map(|(k, n)| (k.clone(), bytes::BytesMut::with_capacity(n))).collect();
    for (item, key) in items.iter_mut() {
        if let Some(chunk) = chunks.get_mut(key) {
            chunk.extend_from_slice(&item.record.data);
            item.record.data = chunk.split().freeze();
        }
    }
}

/// Why a partition value cannot be used in an object key, if it cannot.
pub fn check_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    if value == "." || value == ".." {
        return Err("is a relative path component");
    }
    if value.contains(['/', '\\']) {
        return Err("contains a path separator");
    }
    if value.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err("is longer than 256 characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use bytes::Bytes;
    use std::sync::Arc;

    fn item(pairs: &[(&str, &str)]) -> Item {
        let mut keys = PartitionKeys::default();
        for (k, v) in pairs {
            keys.query.insert(k.to_string(), v.to_string());
        }
        Item { record: Record::new(0, 0, Bytes::new()), keys: Some(Arc::new(keys)) }
    }

    #[test]
    fn keys_come_from_the_prefix_and_hostile_values_are_refused() {
        let p = Partitioner::new(
            &KeyTemplate::parse("c=!{partitionKeyFromQuery:c}/y=!{partitionKeyFromQuery:y}/").unwrap(),
        );
        let a = p.key(&item(&[("c", "42"), ("y", "2026"), ("unused", "x")])).unwrap();
        let b = p.key(&item(&[("c", "42"), ("y", "2026")])).unwrap();
        assert_eq!(a, b, "keys not in the prefix do not split partitions");
        assert_ne!(a, p.key(&item(&[("c", "43"), ("y", "2026")])).unwrap());
        assert_eq!(p.key(&item(&[("c", "42")])).unwrap_err().0, CODE_MISSING);
        for hostile in ["../../etc", "..", ".", "a/b", "a\\b", "", "tab\there", "nl\n", &"x".repeat(257)] {
            assert_eq!(p.key(&item(&[("c", hostile), ("y", "1")])).unwrap_err().0, CODE_INVALID, "{hostile:?}");
        }
        assert!(p.key(&item(&[("c", "über-ü 1"), ("y", "a.b")])).is_ok(), "ordinary text, dots and unicode pass");
        let mut p = p;
        let interned = p.key_interned(&item(&[("c", "42"), ("y", "2026")])).unwrap();
        assert_eq!(interned, a);
        assert!(std::sync::Arc::ptr_eq(&interned, &p.key_interned(&item(&[("c", "42"), ("y", "2026")])).unwrap()));
        assert_eq!(p.key_interned(&item(&[("c", "..")])).unwrap_err().0, CODE_INVALID);
    }

    #[test]
    fn copies_share_one_allocation_per_partition_and_keep_the_bytes() {
        let frame = Bytes::from_static(b"aaabbbcc");
        let mut items: Vec<(Item, PartitionKey)> = [(0..3, "x"), (3..6, "y"), (6..8, "x")]
            .into_iter()
            .map(|(range, k)| {
                let record = Record::new(0, 0, frame.slice(range));
                (Item { record, keys: None }, PartitionKey::from(k))
            })
            .collect();
        copy_per_partition(&mut items);
        let data: Vec<&[u8]> = items.iter().map(|(i, _)| i.record.data.as_ref()).collect();
        assert_eq!(data, [b"aaa".as_slice(), b"bbb", b"cc"]);
        let frame_at = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        assert!(
            items.iter().all(|(i, _)| !frame_at.contains(&(i.record.data.as_ptr() as usize))),
            "no slice of the frame is left"
        );
        assert_eq!(
            items[2].0.record.data.as_ptr(),
            items[0].0.record.data.as_ptr().wrapping_add(3),
            "x's records share a chunk"
        );
    }

    #[test]
    fn without_partition_keys_everything_shares_one_buffer() {
        let p = Partitioner::new(&KeyTemplate::parse("logs/!{timestamp:yyyy}/").unwrap());
        assert!(!p.is_partitioned());
        assert_eq!(&*p.key(&item(&[])).unwrap(), "");
    }

    #[test]
    fn routing_keys_split_batches_where_records_have_them_and_refuse_nothing() {
        let p = Partitioner::new(&KeyTemplate::parse("logs/").unwrap()).routed_by(&["table"]);
        assert!(p.is_partitioned());
        let lambda = |v: &str| {
            let mut keys = PartitionKeys::default();
            keys.lambda.insert("table".into(), v.into());
            Item { record: Record::new(0, 0, Bytes::new()), keys: Some(Arc::new(keys)) }
        };
        assert_ne!(p.key(&lambda("a")).unwrap(), p.key(&lambda("b")).unwrap());
        assert_eq!(p.key(&lambda("a")).unwrap(), p.key(&lambda("a")).unwrap());
        assert_eq!(&*p.key(&item(&[])).unwrap(), "", "a record without the key keeps the default batch");
        assert_eq!(p.key(&lambda("a/b")).unwrap_err().0, CODE_INVALID);
    }
}
