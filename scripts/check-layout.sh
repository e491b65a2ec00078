#!/usr/bin/env bash
# Checks the architecture rules that the compiler cannot: the core is sync-free (no clock, I/O,
# locks, threads, logging, or imports from the shell), files stay readable (≤ 800 lines, basenames
# ≤ 16 characters, depth ≤ 2 under src/), and module wiring is explicit (no glob imports outside
# test modules, no #[path], no include! of Rust code).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
complain() { echo "layout: $*" >&2; fail=1; }

# The clock (`SystemTime`, `Instant`, and `.elapsed()`, which reads it), locks, threads, files,
# sockets, the runtime, the clients and logging are the shell's.
forbidden='SystemTime|Instant|\.elapsed\(|std::sync|std::thread|std::fs|std::net|std::process|std::env|may::|ureq|redb|postgres|redis|log::'
while IFS= read -r hit; do complain "core must stay sync-free: $hit"; done < <(grep -rnE "$forbidden" src/core | grep -vE "^[^:]+:[0-9]+:[[:space:]]*//" || true)
# An allowlist, not a denylist: the core imports nothing of this crate but the core.
while IFS= read -r hit; do complain "core imports only crate::core: $hit"; done < <(grep -rnE 'crate::[A-Za-z_]+' src/core | grep -vE "^[^:]+:[0-9]+:[[:space:]]*//" | grep -vE 'crate::core([^A-Za-z_]|$)' || true)
# `super::` from the core's root (outside its test module) would leave the core.
while IFS= read -r hit; do complain "core/mod.rs reaches outside the core: $hit"; done < <(awk '/#\[cfg\(test\)\]/{t=1} /super::/{ if(!t) print "src/core/mod.rs:" NR ": " $0 }' src/core/mod.rs)

while IFS= read -r f; do
  lines=$(wc -l < "$f")
  [ "$lines" -le 800 ] || complain "$f has $lines lines (limit 800)"
  base=$(basename "$f" .rs)
  [ "${#base}" -le 16 ] || complain "$f: basename longer than 16 characters"
  depth=$(echo "${f#src/}" | tr -cd '/' | wc -c)
  [ "$depth" -le 2 ] || complain "$f: deeper than 2 directories under src/"
done < <(find src -name '*.rs')

while IFS= read -r hit; do complain "no #[path] or include! of Rust code: $hit"; done < <(grep -rnE '#\[path|include!\(' src tests --include=*.rs || true)
# `use super::*` only inside test modules (files named tests.rs or after #[cfg(test)]).
for f in $(grep -rlE 'use super::\*' src || true); do
  case "$f" in */tests.rs) continue ;; esac
  awk -v f="$f" '/#\[cfg\(test\)\]/{t=1} /use super::\*/{ if(!t){ print "layout: glob import outside tests in " f ":" NR; bad=1 } } END{ exit bad }' "$f" || fail=1
done

[ "$fail" -eq 0 ] && echo "layout: ok"
exit "$fail"
