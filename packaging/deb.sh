#!/usr/bin/env bash
# Builds jam's Debian package, target/debian/jam_<version>-1_<arch>.deb, and prints its path on the last line.
#
#   bash packaging/deb.sh
#
# 1. cargo-deb (the version pinned below) is installed when missing, with `cargo install --locked --root`, into
#    .cache/cargo-bin (git-ignored; JAM_CARGO_BIN chooses another directory). Nothing else of jam needs it.
# 2. `cargo build --locked --profile dist --bin jam`: the packaged binary (Cargo.toml [profile.dist]: LTO, one
#    codegen unit, stripped).
# 3. From that binary, into <target>/dist/assets/: the man pages (`jam manpages DIR`: jam.1 and one page per
#    subcommand, gzipped) and the shell completions (`jam completions bash|zsh|fish`).
# 4. `cargo deb --no-build --profile dist`: the package, laid out by [package.metadata.deb] in Cargo.toml, with
#    the maintainer scripts in packaging/debian/ and the systemd units in config/.
#
# Needs only cargo and crates.io (dpkg-shlibdeps, from dpkg-dev, makes the dependency list more exact when
# present). Works from any directory, as root or not. tests/package.sh builds, lints, installs and purges it.

set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# Pinned so a new release cannot change the package unannounced; bump deliberately.
CARGO_DEB_VERSION=3.8.0
CARGO_BIN="${JAM_CARGO_BIN:-$ROOT/.cache/cargo-bin}"
CARGO_DEB="$CARGO_BIN/bin/cargo-deb"

step() { printf '\n---- packaging/deb.sh: %s\n' "$*" >&2; }
die() {
    printf 'packaging/deb.sh: %s\n' "$*" >&2
    exit 1
}

command -v cargo >/dev/null || die "no cargo on PATH; install Rust (rustup) first"

if [[ ! -x "$CARGO_DEB" ]] || [[ "$("$CARGO_DEB" --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]]; then
    step "installing cargo-deb $CARGO_DEB_VERSION into $CARGO_BIN"
    cargo install --locked --quiet --root "$CARGO_BIN" --version "$CARGO_DEB_VERSION" cargo-deb >&2 ||
        die "could not install cargo-deb $CARGO_DEB_VERSION"
fi

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -n "$TARGET_DIR" ]] || die "cargo metadata named no target directory"
OUT="$TARGET_DIR/dist"

step "cargo build --locked --profile dist --bin jam"
cargo build --locked --profile dist --bin jam >&2
JAM="$OUT/jam"
[[ -x "$JAM" ]] || die "the build left no $JAM"

step "man pages and shell completions into $OUT/assets"
rm -rf "$OUT/assets"
mkdir -p "$OUT/assets/completions"
"$JAM" manpages "$OUT/assets/man"
gzip -9 --no-name "$OUT/assets/man/"*.1
"$JAM" completions bash >"$OUT/assets/completions/jam.bash"
"$JAM" completions zsh >"$OUT/assets/completions/_jam"
"$JAM" completions fish >"$OUT/assets/completions/jam.fish"
[[ -f "$OUT/assets/man/jam.1.gz" ]] || die "jam manpages wrote no jam.1"

step "cargo deb --no-build --profile dist"
DEB=$("$CARGO_DEB" --no-build --profile dist --package jam)
[[ -f "$DEB" ]] || die "cargo deb reported '$DEB', which is no file"
echo "$DEB"
