//! The AWS shared credentials/config files, for what object_store's environment chain lacks.
//!
//! object_store reads `AWS_*` variables, web identity, ECS and instance metadata. Users also expect
//! `~/.aws/credentials` with `AWS_PROFILE`, so static keys and the region are read from the
//! shared files when the environment does not set them.

use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProfileSettings {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
}

pub fn load() -> ProfileSettings {
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let credentials = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/credentials"));
    let config = std::env::var_os("AWS_CONFIG_FILE").map(PathBuf::from).unwrap_or_else(|| home.join(".aws/config"));
    let creds = std::fs::read_to_string(credentials).map(|t| section(&t, &profile)).unwrap_or_default();
    let config_section = if profile == "default" { profile.clone() } else { format!("profile {profile}") };
    let conf = std::fs::read_to_string(config).map(|t| section(&t, &config_section)).unwrap_or_default();
    let get = |key: &str| creds.get(key).or_else(|| conf.get(key)).cloned();
    ProfileSettings {
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token"),
        region: conf.get("region").cloned(),
    }
}

/// The `key = value` pairs of one `[section]` of an INI file.
fn section(text: &str, name: &str) -> HashMap<String, String> {
    let mut inside = false;
    let mut out = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            inside = line[1..line.len() - 1].trim() == name;
        } else if inside && !line.starts_with(['#', ';']) {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::section;

    #[test]
    fn reads_one_section() {
        let text =
            "[default]\naws_access_key_id = A\n[profile dev]\nregion=eu-west-1\n# c\naws_secret_access_key = S \n";
        assert_eq!(section(text, "default").get("aws_access_key_id").map(String::as_str), Some("A"));
        let dev = section(text, "profile dev");
        assert_eq!(dev.get("region").map(String::as_str), Some("eu-west-1"));
        assert_eq!(dev.get("aws_secret_access_key").map(String::as_str), Some("S"));
        assert!(!dev.contains_key("aws_access_key_id"));
    }
}
