//! Build script: links the `sluice` executable with packed relative relocations (`DT_RELR`,
//! `-z pack-relative-relocs`) where the C library it is built for understands them.
//!
//! Why: sluice is a position-independent executable (so the kernel places it at a random address),
//! and its 4 MB of classic relative relocations (`.rela.dyn`, one 24-byte entry per pointer in its
//! tables) were read by the loader at every start, which also wrote the 3.3 MB of tables they point
//! into. Packed, they take 53 KB: the daemon is resident with 26 instead of 30–33 MiB when idle, and
//! with about 4 MiB fewer of its own pages under load, at the same speed (BENCHMARKS.md, "The
//! executable's own pages").
//!
//! Only for a native build on GNU/Linux whose glibc is 2.36 or newer (the first to apply `DT_RELR`):
//! the binary then needs glibc 2.36 (`GLIBC_ABI_DT_RELR`), and an older loader refuses it by name
//! instead of running it unrelocated. Cross builds and other C libraries link as before.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if packed_relocations_apply() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the binary is built for the machine building it, on GNU/Linux with glibc ≥ 2.36.
fn packed_relocations_apply() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let native = var("HOST") == var("TARGET");
    if !(native && var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu") {
        return false;
    }
    glibc_version().is_some_and(|(major, minor)| (major, minor) >= (2, 36))
}

/// The running glibc's version (the build host's, which for a native build is the target's).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_version() -> Option<(u32, u32)> {
    // SAFETY: gnu_get_libc_version returns a pointer to a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let mut parts = version.to_str().ok()?.split('.').map(|part| part.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_version() -> Option<(u32, u32)> {
    None
}
