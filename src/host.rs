//! This machine's host name, for configs and records that must tell a fleet's hosts apart.
//!
//! `${HOSTNAME}` in a config falls back to it (`config::interpolate`): shells set `HOSTNAME` without
//! exporting it and systemd does not set it at all, so a unit's `hosts/${HOSTNAME:-localhost}/` used
//! to put every host under `hosts/localhost/` (issue #23). Kubernetes sets `HOSTNAME` to the pod's
//! name, which the environment then still supplies.
//!
//! Ground floor: imports nothing of ours.

use std::sync::OnceLock;

/// The kernel's host name (`gethostname(2)`, as `hostname` prints it), read once.
pub fn hostname() -> Option<&'static str> {
    static NAME: OnceLock<Option<String>> = OnceLock::new();
    NAME.get_or_init(read).as_deref()
}

fn read() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_name_is_what_the_kernel_says() {
        let expected = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(super::hostname(), Some(expected.trim()));
    }
}
