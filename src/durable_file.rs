//! Replacing a small state file so that a crash leaves either the old or the new content, never a
//! torn one: write a temporary file, fsync it, rename it over the old one, fsync the directory.
//! Checkpoints, stored streams and inferred schemas are all written this way.

use std::io::Write;
use std::path::Path;

pub fn replace(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(body)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// [`replace`] with `value` as pretty JSON.
pub fn replace_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    replace(path, &serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_file_is_replaced_whole_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        super::replace_json(&path, &serde_json::json!({ "a": 1 })).unwrap();
        super::replace_json(&path, &serde_json::json!({ "a": 2 })).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back["a"], 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
