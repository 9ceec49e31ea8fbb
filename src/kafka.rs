//! How sluice reaches a Kafka cluster: the brokers, TLS and SASL settings the Kafka source and the
//! Kafka destination share, turned into librdkafka's client configuration.
//!
//! A ground-floor module: it imports nothing of ours, so config (which validates these settings)
//! and both connectors can use it. Passwords are never printed: `Debug` leaves them out, and
//! librdkafka's own errors do not repeat configuration values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rdkafka::ClientConfig;

/// Everything needed to connect, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct Connection {
    /// `host:port` of one or more brokers (the bootstrap list).
    pub brokers: Vec<String>,
    pub tls: Option<Tls>,
    pub sasl: Option<Sasl>,
    /// librdkafka properties set last (they win over sluice's own), for what sluice does not name.
    pub options: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// CA certificates to trust instead of the system's (PEM).
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key, for brokers that authenticate clients by certificate.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// `false` skips verifying the broker's certificate (tests, self-signed clusters).
    pub verify: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    /// The name librdkafka and Kafka use (`sasl.mechanism`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Sasl {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Options may hold credentials (`sasl.password`, `ssl.key.password`): names only.
        f.debug_struct("Connection")
            .field("brokers", &self.brokers)
            .field("tls", &self.tls)
            .field("sasl", &self.sasl)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// librdkafka properties whose values are secret: never logged, never echoed in errors.
pub fn is_secret_option(name: &str) -> bool {
    name.contains("password") || name.contains("secret") || name.ends_with(".pem") || name == "sasl.oauthbearer.config"
}

impl Connection {
    /// librdkafka's settings for this connection; the caller adds the client's own (group id,
    /// producer settings) before `options` are applied with [`Connection::apply_options`].
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers.join(","));
        let protocol = match (&self.tls, &self.sasl) {
            (None, None) => "plaintext",
            (Some(_), None) => "ssl",
            (None, Some(_)) => "sasl_plaintext",
            (Some(_), Some(_)) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let Some(tls) = &self.tls {
            if let Some(ca) = &tls.ca_file {
                c.set("ssl.ca.location", ca.display().to_string());
            }
            if let Some(cert) = &tls.cert_file {
                c.set("ssl.certificate.location", cert.display().to_string());
            }
            if let Some(key) = &tls.key_file {
                c.set("ssl.key.location", key.display().to_string());
            }
            if !tls.verify {
                c.set("enable.ssl.certificate.verification", "false");
                c.set("ssl.endpoint.identification.algorithm", "none");
            }
        }
        if let Some(sasl) = &self.sasl {
            c.set("sasl.mechanism", sasl.mechanism.name());
            c.set("sasl.username", &sasl.username);
            c.set("sasl.password", &sasl.password);
        }
        // librdkafka logs through its own callback; sluice's context forwards it to tracing.
        c.set("log.connection.close", "false");
        c
    }

    /// Sets `options` last, so a user's explicit property wins.
    pub fn apply_options(&self, c: &mut ClientConfig) {
        for (k, v) in &self.options {
            c.set(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_follows_tls_and_sasl_and_options_win() {
        let mut conn = Connection {
            brokers: vec!["a:9092".into(), "b:9092".into()],
            tls: None,
            sasl: None,
            options: BTreeMap::from([("fetch.min.bytes".to_string(), "1".to_string())]),
        };
        let c = conn.client_config();
        assert_eq!(c.get("bootstrap.servers"), Some("a:9092,b:9092"));
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
        conn.sasl = Some(Sasl { mechanism: Mechanism::ScramSha512, username: "u".into(), password: "hunter2".into() });
        conn.tls = Some(Tls { ca_file: None, cert_file: None, key_file: None, verify: false });
        let mut c = conn.client_config();
        conn.apply_options(&mut c);
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("fetch.min.bytes"), Some("1"));
        assert!(!format!("{conn:?}").contains("hunter2"), "the password is never printed");
    }
}
