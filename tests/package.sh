#!/usr/bin/env bash
# The Debian package, end to end, as a release engineer meets it: built (packaging/deb.sh), checked with
# lintian (no errors), installed with dpkg -i, looked at (jam --version, man jam, the bash, zsh and fish
# completions, systemd-analyze verify on the installed units jam-mirror.service and jam-serve.service, the
# jam user, the conffiles each unit reads), installed again over itself, and purged; then nothing of it may
# be left. A second round shows that purge keeps a state directory that holds data, and says so.
#
#   bash tests/package.sh          (tests/run.sh runs it after the cargo tests)
#
# Needs root and a Debian-based machine: it installs the package into this system, and, when missing,
# lintian, man-db, bash-completion, zsh, fish and systemd with apt-get. It refuses to run where a jam package
# or a jam user already exists, and purges its package again on any failure. Outside CI (CI=true) a machine
# without root or dpkg skips it with a message; under CI that is a failure.

set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

STARTED=$SECONDS
step() { printf -- '-- package: %s  (%ds)\n' "$*" "$((SECONDS - STARTED))"; }
fail() {
    printf 'tests/package.sh: FAILED: %b\n' "$*" >&2
    exit 1
}
skip() {
    if [[ "${CI:-}" == true ]]; then
        fail "$* (CI=true: this is a failure, not a skip)"
    fi
    printf 'tests/package.sh: skipping: %s\n' "$*"
    exit 0
}

[[ $(id -u) == 0 ]] || skip "installing the package needs root"
command -v dpkg >/dev/null && command -v apt-get >/dev/null || skip "not a Debian-based machine (no dpkg or apt-get)"
if dpkg-query -W -f='${Status}' jam 2>/dev/null | grep -q installed; then
    fail "a jam package is installed on this machine already; this test would replace it (dpkg --purge jam first)"
fi
if getent passwd jam >/dev/null || getent group jam >/dev/null; then
    fail "a user or group 'jam' exists on this machine already; this test's purge would remove it"
fi

# --- tools -------------------------------------------------------------------------------------------------
missing=()
for tool in lintian:lintian man:man-db bash:bash zsh:zsh fish:fish systemd-analyze:systemd; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
[[ -f /usr/share/bash-completion/bash_completion ]] || missing+=(bash-completion)
if ((${#missing[@]})); then
    step "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- build and lint ----------------------------------------------------------------------------------------
step "bash packaging/deb.sh"
DEB=$(bash packaging/deb.sh | tail -n 1)
[[ -f "$DEB" ]] || fail "packaging/deb.sh named no package: '$DEB'"
ls -l "$DEB"

step "lintian $DEB"
# lintian warns that it runs as root; it still checks everything.
lintian --fail-on error "$DEB" 2>&1 | grep -v 'running with root privileges' || true
lintian --fail-on error "$DEB" >/dev/null 2>&1 || fail "lintian reports errors (above)"

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
COMMIT=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
mapfile -t FILES < <(dpkg-deb --fsys-tarfile "$DEB" | tar -t | sed -n 's|^\./\(.*[^/]\)$|/\1|p')
((${#FILES[@]} > 10)) || fail "the package holds only ${#FILES[@]} files"

INSTALLED=""
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/jam-package.XXXXXX")
cleanup() {
    local rc=$?
    rm -rf "$SCRATCH"
    if [[ -n "$INSTALLED" ]]; then
        dpkg --purge jam >/dev/null 2>&1 || true
        rm -rf /var/lib/jam-mirror
    fi
    exit "$rc"
}
trap cleanup EXIT

# --- install and look --------------------------------------------------------------------------------------
step "dpkg -i"
INSTALLED=1
dpkg -i "$DEB"
[[ "$(dpkg-query -W -f='${Status}' jam)" == "install ok installed" ]] || fail "dpkg does not list jam as installed"

step "jam --version"
[[ "$(command -v jam)" == /usr/bin/jam ]] || fail "jam on PATH is $(command -v jam), not /usr/bin/jam"
got=$(jam --version)
want="jam $VERSION (commit $COMMIT)"
[[ "$got" == "$want" ]] || fail "jam --version printed '$got', expected '$want'"
echo "$got"

step "man jam, man jam-mirror"
[[ "$(man -w jam)" == /usr/share/man/man1/jam.1.gz ]] || fail "man -w jam: $(man -w jam 2>&1)"
page=$(MANWIDTH=100 man jam 2>&1) || fail "man jam: $page"
for want in "jam - Jenkins Artifact Mirror" SYNOPSIS "jam-mirror(1)" "Exit codes:"; do
    grep -qF -- "$want" <<<"$page" || fail "man jam does not show '$want':\n$page"
done
for sub in mirror fetch ls verify doctor prune serve completions; do
    man -w "jam-$sub" >/dev/null || fail "no man page jam-$sub(1)"
done
grep -qF -- "--once" <<<"$(MANWIDTH=100 man jam-mirror)" || fail "man jam-mirror does not show --once"

step "completions: bash, zsh, fish"
bash_words=$(bash -c '
    source /usr/share/bash-completion/bash_completion
    __load_completion jam || exit 1
    COMP_WORDS=(jam mi); COMP_CWORD=1; COMP_LINE="jam mi"; COMP_POINT=${#COMP_LINE}
    _jam jam mi jam
    printf "%s\n" "${COMPREPLY[@]}"')
grep -qx mirror <<<"$bash_words" || fail "bash does not complete 'jam mi' to mirror: '$bash_words'"
zsh_fn=$(HOME="$SCRATCH" zsh -fc 'autoload -Uz compinit && compinit -u -D && print -r -- ${_comps[jam]}')
[[ "$zsh_fn" == _jam ]] || fail "zsh's compinit did not find _jam for jam (got '$zsh_fn')"
fish_words=$(HOME="$SCRATCH" XDG_CONFIG_HOME="$SCRATCH/config" fish -c 'complete -C"jam mi"')
grep -q '^mirror' <<<"$fish_words" || fail "fish does not complete 'jam mi' to mirror: '$fish_words'"

step "systemd-analyze verify the installed units"
mapfile -t UNITS < <(printf '%s\n' "${FILES[@]}" | grep '^/usr/lib/systemd/system/.*\.service$' | sort)
want_units="/usr/lib/systemd/system/jam-mirror.service /usr/lib/systemd/system/jam-serve.service"
[[ "${UNITS[*]}" == "$want_units" ]] || fail "the package installs the units '${UNITS[*]}', not '$want_units'"
CONFFILES=$(dpkg-query -W -f='${Conffiles}\n' jam)
for unit in "${UNITS[@]}"; do
    out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
    name=$(basename "$unit")
    if grep -F "$name" <<<"$out"; then
        fail "systemd-analyze verify warns about $name (above)"
    fi
    grep -qx 'User=jam' "$unit" || fail "$name does not run as the jam user"
    grep -qx 'ExecStart=/usr/bin/jam .*' "$unit" || fail "$name does not start /usr/bin/jam"
    # The config the unit reads is the package's, kept across upgrades.
    config=$(sed -n 's|^ExecStart=/usr/bin/jam .*--config \([^ ]*\).*|\1|p' "$unit")
    grep -q "^ $config " <<<"$CONFFILES" || fail "$name reads '$config', which is no conffile of the package"
    # Each credential it loads is named in that config under the unit's own credentials directory.
    while IFS= read -r id; do
        grep -qF "\"/run/credentials/$name/$id\"" "$config" ||
            fail "$name loads the credential $id, which $config does not name (/run/credentials/$name/$id)"
    done < <(sed -n 's/^LoadCredential=\([^:]*\):.*/\1/p' "$unit")
    echo "$name: verified"
done

step "the jam user, the credentials directory, the conffiles"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd jam)
((uid < 1000)) || fail "jam is not a system user (uid $uid)"
[[ "$home" == /var/lib/jam-mirror && "$shell" == */nologin ]] || fail "jam's home '$home' or shell '$shell'"
getent group jam >/dev/null || fail "no group jam"
[[ "$(stat -c '%a %U' /etc/jam/credentials)" == "700 root" ]] || fail "/etc/jam/credentials is $(stat -c '%a %U' /etc/jam/credentials)"
for conf in /etc/jam/jam.toml /etc/jam/serve.toml; do
    grep -q "^ $conf " <<<"$CONFFILES" || fail "$conf is no conffile"
done
jam --config /etc/jam/jam.toml ls --help >/dev/null || fail "jam does not start with the installed config"

step "dpkg -i again (an upgrade to the same version)"
dpkg -i "$DEB" >/dev/null
[[ "$(getent passwd jam | cut -d: -f3)" == "$uid" ]] || fail "reinstalling changed the jam user"

# --- purge: nothing left -----------------------------------------------------------------------------------
leftovers() {
    local f
    for f in "${FILES[@]}" /etc/jam /usr/share/jam /usr/share/doc/jam /var/lib/jam-mirror; do
        [[ -e "$f" ]] && echo "$f"
    done
    getent passwd jam >/dev/null && echo "user jam"
    getent group jam >/dev/null && echo "group jam"
    dpkg-query -W jam >/dev/null 2>&1 && echo "dpkg still knows jam"
    find /etc/systemd /var/lib/systemd -name '*jam-*' 2>/dev/null
    return 0
}

step "dpkg --purge"
dpkg --purge jam
INSTALLED=""
left=$(leftovers)
[[ -z "$left" ]] || fail "dpkg --purge left behind:\n$left"
echo "nothing left"

step "purge keeps a state directory that holds mirrored data"
INSTALLED=1
dpkg -i "$DEB" >/dev/null
install -d -o jam -g jam -m 0750 /var/lib/jam-mirror/store
echo data >/var/lib/jam-mirror/store/object
said=$(dpkg --purge jam 2>&1)
INSTALLED=""
[[ -f /var/lib/jam-mirror/store/object ]] || fail "purge deleted mirrored data in /var/lib/jam-mirror"
grep -qF "kept /var/lib/jam-mirror" <<<"$said" || fail "purge did not say it kept /var/lib/jam-mirror: $said"
rm -rf /var/lib/jam-mirror
left=$(leftovers)
[[ -z "$left" ]] || fail "dpkg --purge left behind (besides the data):\n$left"

step "passed"
