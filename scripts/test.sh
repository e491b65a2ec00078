#!/usr/bin/env bash
# The whole test suite, the one gate: formatting, clippy (warnings are errors), the layout rules,
# then every unit and integration test, then a fuzz smoke run of every target (the real binary over TCP in front of a mock upstream, and
# the official openai Python SDK as a client) and the deployment checks. Installs what the tests need; fails loudly when a
# required tool is missing — nothing is ever skipped silently.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "scripts/test.sh: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is not installed"
command -v curl >/dev/null || die "curl is required: the deploy test runs the seed page's curl command (apt-get install curl)"
command -v python3 >/dev/null || die "python3 is required for the SDK tests (apt-get install python3 python3-venv)"

# The openai and anthropic Python SDKs in a project-local venv.
venv="${PRODEX_TEST_VENV:-target/test-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || die "cannot create a venv (apt-get install python3-venv)"
fi
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'openai>=1.50,<3' || die "cannot install the openai SDK"
fi
# The anthropic Python SDK (Anthropic-shaped clients through the Gemini bridge).
if ! "$venv/bin/python" -c "import anthropic" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'anthropic>=0.40,<1' || die "cannot install the anthropic SDK"
fi
# The OpenAPI validator and schemathesis (tests/contract.rs runs them against a live gateway).
if ! "$venv/bin/python" -c "import openapi_spec_validator, schemathesis" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'openapi-spec-validator>=0.7,<1' 'schemathesis>=4,<5' \
    || die "cannot install openapi-spec-validator and schemathesis"
fi
PRODEX_TEST_PYTHON="$(cd "$venv" && pwd)/bin/python"
export PRODEX_TEST_PYTHON

# promtool (Debian's prometheus package) checks the metrics exposition.
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
      || die "cannot install promtool (apt-get install prometheus)"
  else
    die "promtool is required for the metrics tests (apt-get install prometheus)"
  fi
fi
PRODEX_TEST_PROMTOOL="$(command -v promtool)"
export PRODEX_TEST_PROMTOOL

# Throwaway PostgreSQL and Redis for the storage tests (temp dirs, free ports, stopped on exit).
# shellcheck source=scripts/services.sh
. scripts/services.sh
trap stop_services EXIT
start_postgres || die "PostgreSQL is required for the postgres backend tests"
start_redis || die "Redis is required for the redis backend tests"
start_tls_services || die "PostgreSQL and Redis with TLS are required for the backend TLS tests (openssl, a TLS-capable redis-server)"

cargo fmt --check || die "code is not formatted: run cargo fmt"
cargo clippy --all-targets --locked -- -D warnings
scripts/check-layout.sh
scripts/check-deploy.sh
cargo test --locked --lib --bins --tests   # not --benches: benchmarks run from scripts/bench
# Fuzz smoke: every target for a short while (scripts/fuzz for longer runs).
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" scripts/fuzz
