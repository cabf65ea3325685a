#!/usr/bin/env bash
# The test command (README): lint, then every test tier.
# Privileged tests need root; under CI=true they fail rather than skip when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests touch only their own temp dirs (under /tmp and /var/tmp): what the
# container tools would create by default (a store, run state, config) and
# every mount point outside the temp dirs, listed before and after the
# suite; anything new fails the run.
host_state() {
    local d
    for d in /var/lib/containers /run/containers /run/libpod /etc/containers \
        /var/lib/cni /etc/cni "${HOME:-/root}/.local/share/containers" \
        "${HOME:-/root}/.config/containers"; do
        if [ -e "$d" ]; then
            find "$d" -xdev -maxdepth 4 -printf 'path %p\n' 2>/dev/null || true
        fi
    done
    # Mount points are field 5 of mountinfo (octal escapes kept as they are).
    awk '$5 !~ "^/(var/)?tmp/" { print "mount " $5 }' /proc/self/mountinfo
}

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
before=$(host_state | sort -u)
status=0
cargo test --workspace --release --locked --no-fail-fast -- --test-threads="${STRATA_TEST_THREADS:-2}" || status=$?
after=$(host_state | sort -u)
new=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after"))
if [ -n "$new" ]; then
    echo "tests created or mounted outside their temp dirs:" >&2
    printf '%s\n' "$new" >&2
    status=1
fi
exit "$status"
