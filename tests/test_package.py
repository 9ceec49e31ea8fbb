"""Packages: `scripts/release.sh` builds the release archive and the Debian package (cargo deb); the
package is inspected with dpkg-deb, installed with dpkg, checked where it put things, and purged.

The script packages the debug build here (`--binary`), so the test checks the packaging rather than
waiting for a release build; the release build itself is measured in BENCHMARKS.md. Installing needs
root (or password-less sudo): the test says so if neither is there."""

import grp
import os
import platform
import pwd
import re
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import BINARY, ROOT

DIST = ROOT / "target" / "dist"


def sudo():
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    pytest.fail("installing the Debian package needs root or password-less sudo")


@pytest.fixture(scope="module")
def built():
    assert shutil.which("cargo-deb"), "scripts/test.sh installs cargo-deb (into $SLUICE_TOOLS) for this"
    shutil.rmtree(DIST, ignore_errors=True)
    out = subprocess.run([str(ROOT / "scripts" / "release.sh"), "--binary", str(BINARY)], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    archives, debs = sorted(DIST.glob("sluice-*.tar.gz")), sorted(DIST.glob("sluice_*.deb"))
    assert len(archives) == 1 and len(debs) == 1, list(DIST.iterdir())
    return archives[0], debs[0]


def test_the_release_archive_has_the_binary_license_readme_man_page_and_completions(built, tmp_path):
    archive, _ = built
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        top = archive.name.removesuffix(".tar.gz")
        for path in ["sluice", "LICENSE", "README.md", "man/man1/sluice.1", "completions/sluice.bash",
                     "completions/_sluice", "completions/sluice.fish", "deploy/systemd/sluice.service",
                     "deploy/systemd/sluice.yaml", "config/local.yaml"]:
            assert f"{top}/{path}" in names, path
        tar.extractall(tmp_path, filter="data")
    unpacked = tmp_path / top
    assert os.access(unpacked / "sluice", os.X_OK)
    version = subprocess.run([str(unpacked / "sluice"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("sluice "), version
    assert "Apache License" in (unpacked / "LICENSE").read_text()
    man = (unpacked / "man/man1/sluice.1").read_text()
    assert man.startswith(".ie") or ".TH sluice" in man, man[:200]
    assert "completions" in man and "validate" in man
    # The bash completion is valid bash and completes subcommands.
    script = unpacked / "completions/sluice.bash"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    words = subprocess.run(
        ["bash", "-c", f'source {script}; COMP_WORDS=(sluice va); COMP_CWORD=1; _sluice sluice va sluice; echo "${{COMPREPLY[@]}}"'],
        capture_output=True, text=True)
    assert "validate" in words.stdout.split(), words.stdout + words.stderr


def deb_field(deb, field):
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=True).stdout.strip()


def test_the_debian_package_declares_its_files_conffile_and_scripts(built, tmp_path):
    _, deb = built
    assert deb_field(deb, "Package") == "sluice"
    assert "adduser" in deb_field(deb, "Depends")
    contents = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ["./usr/bin/sluice", "./etc/sluice/sluice.yaml", "./usr/lib/systemd/system/sluice.service",
                 "./usr/share/man/man1/sluice.1.gz", "./usr/share/bash-completion/completions/sluice",
                 "./usr/share/doc/sluice/copyright"]:
        assert path in contents, path
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    assert (control / "conffiles").read_text().split() == ["/etc/sluice/sluice.yaml"]
    postinst = (control / "postinst").read_text()
    assert "adduser --system" in postinst and "#DEBHELPER#" not in postinst


def test_dpkg_installs_the_user_state_directory_and_a_working_binary_and_purge_keeps_the_state(built):
    _, deb = built
    root = sudo()
    subprocess.run([*root, "dpkg", "--purge", "sluice"], capture_output=True)  # a leftover of an earlier run
    out = subprocess.run([*root, "dpkg", "-i", str(deb)], capture_output=True, text=True)
    try:
        assert out.returncode == 0, out.stdout + out.stderr
        user = pwd.getpwnam("sluice")
        assert user.pw_dir == "/var/lib/sluice" and user.pw_shell == "/usr/sbin/nologin"
        state = os.stat("/var/lib/sluice")
        assert state.st_uid == user.pw_uid and stat.S_IMODE(state.st_mode) == 0o750
        env = os.stat("/etc/sluice/sluice.env")
        assert stat.S_IMODE(env.st_mode) == 0o640 and env.st_gid == grp.getgrnam("sluice").gr_gid
        installed = subprocess.run(["/usr/bin/sluice", "--version"], capture_output=True, text=True)
        assert installed.returncode == 0 and installed.stdout.startswith("sluice "), installed
        # The example config it installs is valid as shipped.
        checked = subprocess.run(["/usr/bin/sluice", "validate", "/etc/sluice/sluice.yaml"], capture_output=True,
                                 text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        unit = Path("/usr/lib/systemd/system/sluice.service").read_text()
        assert "ExecStart=/usr/bin/sluice run --config /etc/sluice/sluice.yaml" in unit and "User=sluice" in unit
    finally:
        purged = subprocess.run([*root, "dpkg", "--purge", "sluice"], capture_output=True, text=True)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not Path("/usr/bin/sluice").exists() and not Path("/etc/sluice/sluice.env").exists()
    assert Path("/var/lib/sluice").is_dir(), "purge keeps the state directory (undelivered records)"


def test_the_binary_packs_its_relative_relocations_where_glibc_applies_them_and_the_package_says_so(built):
    """build.rs links with `-z pack-relative-relocs` on glibc ≥ 2.36 (BENCHMARKS.md, "The executable's own
    pages"): the relocations take kilobytes instead of 4 MB read at every start, the binary names the glibc
    feature it needs (so an older loader refuses it by name), and the Debian package depends on that glibc.
    On an older glibc it links as before."""
    _, deb = built
    dynamic = subprocess.run(["readelf", "--dynamic", "--version-info", str(BINARY)], capture_output=True,
                             text=True, check=True).stdout
    major, minor = (int(part) for part in platform.libc_ver()[1].split(".")[:2])
    if (major, minor) >= (2, 36):
        assert "(RELR)" in dynamic and "GLIBC_ABI_DT_RELR" in dynamic, dynamic
        depends = deb_field(deb, "Depends")
        libc6 = [(int(major), int(minor)) for major, minor in re.findall(r"libc6 \(>= (\d+)\.(\d+)", depends)]
        assert libc6 and max(libc6) >= (2, 36), depends
    else:
        assert "(RELR)" not in dynamic
