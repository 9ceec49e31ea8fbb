#!/usr/bin/env bash
# Builds what a release ships, into target/dist/:
#   sluice-<version>-<target>.tar.gz   the binary, LICENSE, README.md, the man page, shell completions,
#                                      deploy/ (systemd, container, Kubernetes) and config/ examples
#   sluice_<version>-1_<arch>.deb      the Debian package (cargo deb; deploy/debian/README.md lists it)
#
# Usage: scripts/release.sh                 build the release binary (profile `release`: stripped), then package
#        scripts/release.sh --binary PATH   package PATH instead of building (the tests package the debug build)
#
# Needs cargo-deb: `cargo install cargo-deb --locked` (the test command installs it into a cache).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    *) echo "usage: scripts/release.sh [--binary PATH]" >&2; exit 2 ;;
  esac
done
command -v cargo-deb >/dev/null || { echo "cargo-deb is missing: cargo install cargo-deb --locked" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
target=$(rustc -vV | sed -n 's/^host: //p')
if [ -z "$binary" ]; then
  cargo build --release --locked
  binary=target/release/sluice
  deb_flags=()
  deb_target_dir=target
else
  # cargo deb takes the binary from <target dir>/release/: give it a private one holding PATH.
  deb_target_dir=$(mktemp -d)
  trap 'rm -rf "$deb_target_dir"' EXIT
  mkdir -p "$deb_target_dir/release"
  cp "$binary" "$deb_target_dir/release/sluice"
  strip "$deb_target_dir/release/sluice"   # as the release profile's own build is
  deb_flags=(--fast)
fi

# The man page and completions come from the binary's own command-line definition.
generated=target/generated
rm -rf "$generated" && mkdir -p "$generated/completions"
"$binary" man > "$generated/sluice.1"
gzip -9n < "$generated/sluice.1" > "$generated/sluice.1.gz"
"$binary" completions bash > "$generated/completions/sluice.bash"
"$binary" completions zsh > "$generated/completions/_sluice"
"$binary" completions fish > "$generated/completions/sluice.fish"

dist=target/dist
mkdir -p "$dist"
name="sluice-$version-$target"
stage=$(mktemp -d)
mkdir -p "$stage/$name/man/man1"
install -m 0755 "$binary" "$stage/$name/sluice"
strip "$stage/$name/sluice"
cp LICENSE README.md "$stage/$name/"
cp "$generated/sluice.1" "$stage/$name/man/man1/"
cp -r "$generated/completions" deploy config "$stage/$name/"
tar -C "$stage" -czf "$dist/$name.tar.gz" "$name"
rm -rf "$stage"
echo "$dist/$name.tar.gz"

CARGO_TARGET_DIR="$deb_target_dir" cargo deb --no-build ${deb_flags[@]+"${deb_flags[@]}"} --output "$dist/"
