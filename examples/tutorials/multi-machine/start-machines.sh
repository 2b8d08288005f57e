#!/usr/bin/env bash
# One coordinator and two daemons named `robot` and `gpu`, all on this machine (127.0.0.1):
# the same processes as on three machines, where each daemon would run on its own host.
set -euo pipefail
address="${DORADUS_COORDINATOR:-127.0.0.1:6300}"
wait_for() {   # wait_for FILE TEXT: until FILE holds TEXT (10 s at most), then print that line
    for _ in $(seq 50); do
        grep -q "$2" "$1" 2>/dev/null && break
        sleep 0.2
    done
    grep "$2" "$1"
}
doradus coordinator --port "${address##*:}" > coordinator.log 2>&1 &
wait_for coordinator.log "listening" > /dev/null   # daemons prove themselves with its key
for machine in robot gpu; do
    doradus daemon --machine-id "$machine" -c "$address" --retries 5 > "daemon-$machine.log" 2>&1 &
done
for machine in robot gpu; do
    wait_for "daemon-$machine.log" "connected"
done
