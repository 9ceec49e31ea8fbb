//! The Kafka connection options the Kafka source and the Kafka destination share, as written
//! (`bootstrap_servers`, `tls`, `sasl`, `librdkafka_options`), and their rules. Each connector's
//! `config.rs` lists these fields in its own struct (so unknown fields are still refused) and
//! calls [`connection`].

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Checker, Spanned};
use crate::kafka::{Connection, Mechanism, Sasl, Tls};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaTls {
    /// PEM CA certificates trusted instead of the system's.
    pub ca_file: Option<Spanned<String>>,
    /// A client certificate and key, for clusters that authenticate clients by certificate.
    pub cert_file: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    /// Default true; false accepts any broker certificate (tests, self-signed clusters).
    pub verify: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSasl {
    /// PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    pub mechanism: Spanned<String>,
    pub username: Spanned<String>,
    /// Write `${KAFKA_PASSWORD}` to take it from the environment.
    pub password: Spanned<String>,
}

/// Kafka's rule for topic names (Firehose's TopicName rule, within Kafka's 249 characters).
pub fn valid_topic(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && name.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
}

/// librdkafka properties sluice sets itself because its guarantees rest on them.
const RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "use bootstrap_servers"),
    ("group.id", "use group_id"),
    ("enable.auto.commit", "offsets are committed by sluice after delivery"),
    ("enable.auto.offset.store", "offsets are committed by sluice after delivery"),
    ("transactional.id", "sluice names transactions itself (see `exactly_once`)"),
    ("enable.idempotence", "the Kafka destination's producer is always idempotent"),
];

/// The connection, checked: every broker `host:port`, files readable, a known SASL mechanism,
/// option values scalars and no reserved option.
pub fn connection(
    c: &mut Checker,
    bootstrap_servers: &Spanned<String>,
    tls: Option<&RawKafkaTls>,
    sasl: Option<&RawSasl>,
    options: Option<&BTreeMap<String, Spanned<serde_json::Value>>>,
    field: &str,
) -> Connection {
    let brokers: Vec<String> =
        bootstrap_servers.value.split(',').map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).collect();
    let valid =
        |b: &str| b.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if brokers.is_empty() || !brokers.iter().all(|b| valid(b)) {
        c.at(
            bootstrap_servers,
            &format!("{field}.bootstrap_servers"),
            "must be one or more host:port, separated by commas (e.g. \"kafka-1:9092,kafka-2:9092\")",
        );
    }
    let file = |c: &mut Checker, f: &Option<Spanned<String>>, name: &str| {
        let f = f.as_ref()?;
        let path = c.path(&f.value);
        if let Err(e) = std::fs::metadata(&path) {
            c.at(f, &format!("{field}.tls.{name}"), format!("cannot read `{}`: {e}", path.display()));
        }
        Some(path)
    };
    let tls = tls.map(|t| Tls {
        ca_file: file(c, &t.ca_file, "ca_file"),
        cert_file: file(c, &t.cert_file, "cert_file"),
        key_file: file(c, &t.key_file, "key_file"),
        verify: t.verify.as_ref().is_none_or(|v| v.value),
    });
    if let Some(t) = &tls {
        if t.cert_file.is_some() != t.key_file.is_some() {
            c.plain(format!("{field}.tls: cert_file and key_file go together"));
        }
    }
    let sasl = sasl.and_then(|s| match Mechanism::parse(&s.mechanism.value) {
        Some(mechanism) => {
            Some(Sasl { mechanism, username: s.username.value.clone(), password: s.password.value.clone() })
        }
        None => {
            c.at(&s.mechanism, &format!("{field}.sasl.mechanism"), "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
            None
        }
    });
    let mut out = BTreeMap::new();
    for (name, value) in options.into_iter().flatten() {
        let at = format!("{field}.librdkafka_options.{name}");
        if let Some((_, why)) = RESERVED.iter().find(|(r, _)| r == name) {
            c.at(value, &at, format!("is set by sluice: {why}"));
            continue;
        }
        let text = match &value.value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                c.at(value, &at, "must be a string, number or boolean (librdkafka's property value)");
                continue;
            }
        };
        out.insert(name.clone(), text);
    }
    let conn = Connection { brokers, tls, sasl, options: out };
    // librdkafka checks property names and values when a client is made: do it now, so a typo is
    // a config error with its field rather than a failure at startup.
    let mut probe = conn.client_config();
    conn.apply_options(&mut probe);
    if let Err(e) = probe.create_native_config() {
        let shown = if conn.options.keys().any(|k| crate::kafka::is_secret_option(k)) {
            "a librdkafka option is not accepted".to_string()
        } else {
            e.to_string()
        };
        c.plain(format!("{field}: librdkafka refuses these settings: {shown}"));
    }
    conn
}
