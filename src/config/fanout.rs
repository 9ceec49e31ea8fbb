//! `destinations:` — one pipeline delivering to several destinations (fan-out), each with its own
//! buffering, delivery settings, backup and error output, and an optional `when:` condition.
//!
//! ```yaml
//! destinations:
//!   - s3: { bucket: archive, ... }            # every record
//!   - name: search                            # optional; defaults to the kind (`opensearch`)
//!     when: '.level == "error"'               # optional jq predicate: only records it holds for
//!     buffering: { size_mb: 1, interval_seconds: 5 }
//!     opensearch: { endpoint: ..., backup: { local: { path: ./search-errors } } }
//! ```
//!
//! A list item is the same map `destination:` takes (one key naming the kind) plus the item's own
//! keys. serde cannot flatten an externally tagged enum into a struct without losing the YAML
//! positions every error points at, so [`RawRoute`] reads the map itself: its own keys go to their
//! fields, and the one remaining key is handed to [`RawDestination`] as the enum's tag, with the
//! value read from the original deserializer (positions intact).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, VariantAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::destinations::RawDestination;
use super::kit::{Checker, ObjectDestination};
use super::validate::{buffering, delivery_settings};
use super::{Buffering, DeliverySettings, RawBuffering, RawDelivery, RouteSpec, SendingSpec};

/// Destinations one pipeline may fan out to. Each costs its own buffers and upload tasks.
pub const MAX_DESTINATIONS: usize = 16;

/// One item of `destinations:` as written.
#[derive(Debug)]
pub struct RawRoute {
    /// Names the destination in metrics (`destination="..."`), `/ready` and logs; part of its
    /// batches' names, so it must stay the same while records wait.
    pub name: Option<Spanned<String>>,
    /// A jq expression: the record goes to this destination only when it yields `true`.
    pub when: Option<Spanned<String>>,
    /// Overrides the pipeline's `buffering:` for this destination.
    pub buffering: Option<RawBuffering>,
    /// Overrides the pipeline's `delivery:` for this destination.
    pub delivery: Option<RawDelivery>,
    pub destination: Spanned<RawDestination>,
}

const OWN_KEYS: [&str; 4] = ["name", "when", "buffering", "delivery"];

impl<'de> Deserialize<'de> for RawRoute {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RouteVisitor)
    }
}

struct RouteVisitor;

impl<'de> Visitor<'de> for RouteVisitor {
    type Value = RawRoute;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a destination: one key naming its kind (s3, local, opensearch, ...) and optionally name, when, buffering, delivery")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRoute, A::Error> {
        let (mut name, mut when, mut buffering, mut delivery) = (None, None, None, None);
        let mut destination: Option<Spanned<RawDestination>> = None;
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            match key.value.as_str() {
                "name" => name = Some(map.next_value()?),
                "when" => when = Some(map.next_value()?),
                "buffering" => buffering = Some(map.next_value()?),
                "delivery" => delivery = Some(map.next_value()?),
                kind => {
                    if let Some(first) = &destination {
                        return Err(de::Error::custom(format!(
                            "one destination per list item: `{}` and `{kind}` both appear (make each its own item)",
                            first.value.kind()
                        )));
                    }
                    let value = map.next_value_seed(KindSeed { kind: kind.to_string() })?;
                    destination = Some(Spanned::new(value, key.referenced, key.defined));
                }
            }
        }
        let destination = destination.ok_or_else(|| {
            de::Error::custom(format!(
                "names no destination: add one key naming its kind (s3, local, opensearch, ...) beside {}",
                OWN_KEYS.join(", ")
            ))
        })?;
        Ok(RawRoute { name, when, buffering, delivery, destination })
    }
}

/// What validating one destination yields: its object store and its sending destination, if any.
type Checked = Option<(ObjectDestination, Option<std::sync::Arc<SendingSpec>>)>;

/// Checks `destinations:` item by item. `pipeline` is the pipeline's buffering and delivery, which
/// an item's own override value by value; `one` checks a destination as `destination:` is checked
/// (`(checker, destination, its field, the buffer size that applies, that size's field)`).
pub(super) fn validate(
    c: &mut Checker,
    list: &Spanned<Vec<RawRoute>>,
    field: &str,
    pipeline: (Buffering, DeliverySettings),
    one: impl Fn(&mut Checker, &Spanned<RawDestination>, &str, Option<&Spanned<f64>>, &str) -> Checked,
) -> Vec<RouteSpec> {
    if list.value.is_empty() {
        c.at(list, field, "lists no destination: give at least one (or use `destination:`)");
    }
    if list.value.len() > MAX_DESTINATIONS {
        c.at(list, field, format!("lists {} destinations; at most {MAX_DESTINATIONS}", list.value.len()));
    }
    let mut names = std::collections::HashSet::new();
    let mut routes = Vec::new();
    for (i, r) in list.value.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let name = match &r.name {
            Some(n) => {
                if !valid_name(&n.value) {
                    c.at(
                        n,
                        &format!("{at}.name"),
                        format!("`{}` is not a destination name: 1-64 characters of [a-z0-9_-]", n.value),
                    );
                }
                n.value.clone()
            }
            // The kind, and `-2`, `-3` ... for the second and later of one kind.
            None => {
                let kind = r.destination.value.kind();
                let same_before =
                    list.value[..i].iter().filter(|o| o.name.is_none() && o.destination.value.kind() == kind).count();
                if same_before == 0 {
                    kind.to_string()
                } else {
                    format!("{kind}-{}", same_before + 1)
                }
            }
        };
        if !names.insert(name.clone()) {
            c.at(
                &r.destination,
                &format!("{at}.name"),
                format!("`{name}` names two destinations of this pipeline; give each its own `name:`"),
            );
        }
        let when = r.when.as_ref().map(|w| {
            if let Err(e) = crate::process::jq::JqProgram::compile(&w.value) {
                c.at(w, &format!("{at}.when"), format!("is not a jq expression: {e}"));
            }
            w.value.clone()
        });
        let (buffering, size, size_at) = match &r.buffering {
            Some(b) => (
                buffering(c, b, &format!("{at}.buffering"), Some(pipeline.0)),
                b.size_mb.as_ref(),
                format!("{at}.buffering.size_mb"),
            ),
            None => (pipeline.0, None, String::new()),
        };
        let delivery = match &r.delivery {
            Some(d) => delivery_settings(c, d, &format!("{at}.delivery"), Some(pipeline.1)),
            None => pipeline.1,
        };
        if let Some((store, sending)) = one(c, &r.destination, &at, size, &size_at) {
            routes.push(RouteSpec { name, when, store, sending, buffering, delivery });
        }
    }
    routes
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Reads a map value as the [`RawDestination`] variant its key names.
struct KindSeed {
    kind: String,
}

impl<'de> DeserializeSeed<'de> for KindSeed {
    type Value = RawDestination;

    fn deserialize<D: Deserializer<'de>>(self, value: D) -> Result<RawDestination, D::Error> {
        RawDestination::deserialize(Tagged { kind: self.kind, value })
    }
}

/// An externally tagged enum whose tag was already read: the tag and the deserializer of its value.
struct Tagged<D> {
    kind: String,
    value: D,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Tagged<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_enum(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

impl<'de, D: Deserializer<'de>> EnumAccess<'de> for Tagged<D> {
    type Error = D::Error;
    type Variant = Value<D>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Value<D>), D::Error> {
        let tag: de::value::StringDeserializer<D::Error> = self.kind.into_deserializer();
        Ok((seed.deserialize(tag)?, Value(self.value)))
    }
}

struct Value<D>(D);

impl<'de, D: Deserializer<'de>> VariantAccess<'de> for Value<D> {
    type Error = D::Error;

    fn unit_variant(self) -> Result<(), D::Error> {
        Err(de::Error::custom("a destination takes its options as a map"))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, D::Error> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, D::Error> {
        Err(de::Error::custom("a destination takes its options as a map"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct("", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<RawRoute>, String> {
        serde_saphyr::from_str::<Vec<RawRoute>>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn an_item_is_a_destination_with_its_own_keys() {
        let routes = parse(
            "- local: { path: ./a }\n- name: errors\n  when: '.level == \"error\"'\n  buffering: { size_mb: 1 }\n  stdout: {}\n",
        )
        .unwrap();
        assert_eq!(routes.len(), 2);
        assert!(matches!(routes[0].destination.value, RawDestination::Local(_)));
        assert!(routes[0].name.is_none());
        assert!(matches!(routes[1].destination.value, RawDestination::Stdout(_)));
        assert_eq!(routes[1].name.as_ref().unwrap().value, "errors");
        assert_eq!(routes[1].when.as_ref().unwrap().value, ".level == \"error\"");
        assert_eq!(routes[1].destination.referenced.line(), 5);
    }

    #[test]
    fn problems_are_named() {
        let err = parse("- local: { path: ./a }\n  s3: { bucket: b }\n").unwrap_err();
        assert!(err.contains("one destination per list item"), "{err}");
        let err = parse("- name: x\n").unwrap_err();
        assert!(err.contains("names no destination"), "{err}");
        let err = parse("- snowflake: {}\n").unwrap_err();
        assert!(err.contains("snowflake") && err.contains("local"), "{err}");
        let err = parse("- local: { path: ./a, colour: blue }\n").unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }
}
