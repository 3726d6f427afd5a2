#!/usr/bin/env bash
# Install kb with its test dependencies into .venv and run the whole test suite: every test on SQLite,
# then the files made to pass on PostgreSQL again with PostgreSQL as the metadata store (tests/postgres.py
# starts a throw-away cluster, installing the Debian package when it is missing). Given test paths,
# only those run, on SQLite (KB_TEST_DATABASE=postgresql picks PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
for arg in "$@"; do
    case "$arg" in -*) ;; *) exec .venv/bin/python -m pytest "$@" ;; esac
done
.venv/bin/python -m pytest "$@"
KB_TEST_DATABASE=postgresql .venv/bin/python -m pytest "$@" -rs \
    tests/test_documents_api.py tests/test_quotas.py tests/test_jobs.py tests/test_isolation_stats.py \
    tests/test_filters.py tests/test_migrations.py tests/test_storage_interfaces.py tests/test_agents_api.py \
    tests/test_hardening_limits.py tests/test_auth_and_isolation.py tests/test_rag_indexes.py \
    tests/test_concurrency.py tests/test_batched_indexing.py tests/test_hardening.py
