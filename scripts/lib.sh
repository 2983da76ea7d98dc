# Shared by scripts/demo and scripts/test. Sourced, not run.

# Debian puts nats-server in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/usr/local/sbin"

# Installs nats-server and redis-server from Debian's packages when missing.
ensure_servers() {
    local missing=()
    command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    echo "==> installing ${missing[*]} (Debian packages)"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    # The packages may start system services; orderd's scripts start their own.
    command -v nats-server >/dev/null && command -v redis-server >/dev/null
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
