#!/usr/bin/env bash
# Run the README's test command, exactly as written between the <!-- test-command --> markers
# (extracted, so the README cannot drift from what CI runs). Used by .ci/run and
# .github/workflows/tests.yml. `--print` prints the command instead of running it.
set -euo pipefail
cd "$(dirname "$0")/.."

test_cmd=$(sed -n '/<!-- test-command -->/,/<!-- \/test-command -->/p' README.md | grep -v '^<!--' | grep -v '^```' | sed '/^\s*$/d' || true)  # grep finds nothing: the check below says so
if [ -z "$test_cmd" ]; then
  echo "error: README.md has no test command between <!-- test-command --> markers" >&2
  exit 1
fi
if [ "${1:-}" = "--print" ]; then
  printf '%s\n' "$test_cmd"
  exit 0
fi
echo "+ $test_cmd"
bash -euo pipefail -c "$test_cmd"
