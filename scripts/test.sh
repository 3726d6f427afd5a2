#!/usr/bin/env bash
# Install kb with its test dependencies into .venv and run the whole test suite on both metadata
# stores: a SQLite pass and a PostgreSQL pass (KB_TEST_DATABASE=postgresql: tests/postgres.py starts a
# throw-away cluster per pytest process, installing the Debian package when it is missing). The two
# passes run at the same time, each spread over KB_TEST_WORKERS pytest-xdist workers (default 2; files
# are kept whole on one worker, so module fixtures start once), their output prefixed [sqlite] and
# [postgresql]; a summary of both ends the run, and it fails if either pass does.
#
#   scripts/test.sh                      both passes, the whole suite
#   KB_TEST_DATABASE=postgresql scripts/test.sh      one pass, on that store
#   scripts/test.sh tests/test_x.py -x   only those tests, in one process (on KB_TEST_DATABASE, SQLite by default)
#   scripts/test.sh -q                   options go to both passes
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTEST=(.venv/bin/python -m pytest -rsfE)
for arg in "$@"; do
    case "$arg" in -*) ;; *) exec "${PYTEST[@]}" "$@" ;; esac
done

workers="${KB_TEST_WORKERS:-2}"
if [ -n "${KB_TEST_DATABASE:-}" ]; then
    passes=("$KB_TEST_DATABASE")
else
    passes=(sqlite postgresql)
fi
logs="$(mktemp -d "${TMPDIR:-/tmp}/kb-tests.XXXXXX")"
trap 'kill $(jobs -p) 2>/dev/null || true' INT TERM

run_pass() {  # run_pass NAME ARGS...: one pass, its output prefixed and kept in $logs/NAME.log, its status in $logs/NAME.rc
    local name="$1" started status
    shift
    started=$(date +%s)
    set +e
    KB_TEST_DATABASE="$name" "${PYTEST[@]}" -n "$workers" --dist loadfile "$@" 2>&1 \
        | tee "$logs/$name.log" | sed -u "s/^/[$name] /"
    status=${PIPESTATUS[0]}
    set -e
    echo "$status $(( $(date +%s) - started ))" > "$logs/$name.rc"
}

started=$(date +%s)
for name in "${passes[@]}"; do
    run_pass "$name" "$@" &
done
wait

failed=0
echo
echo "==================== kb test summary ===================="
for name in "${passes[@]}"; do
    status=255 secs=?
    [ -f "$logs/$name.rc" ] && read -r status secs < "$logs/$name.rc"
    result=$(grep -E "(passed|failed|error|skipped|no tests ran).* in [0-9.]+s" "$logs/$name.log" | tail -n 1 | sed -E 's/^=+ | =+$//g' || true)
    printf '%-11s %s  (exit %s, %ss wall)\n' "$name:" "${result:-no result}" "$status" "$secs"
    [ "$status" = 0 ] || failed=1
done
echo "both passes: $(( $(date +%s) - started ))s wall; logs in $logs"
exit "$failed"
