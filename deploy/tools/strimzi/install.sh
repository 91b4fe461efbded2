#!/usr/bin/env bash
# Installs the Strimzi schema validator (pinned in package-lock.json) into .tools/strimzi; prints its script.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
TARGET="$HERE/../../../.tools/strimzi"
command -v npm >/dev/null || { echo "install.sh: error: npm (Node.js 20+) is needed to validate the KafkaTopic resources" >&2; exit 1; }
mkdir -p "$TARGET"
cp "$HERE/package.json" "$HERE/package-lock.json" "$HERE/validate.mjs" "$TARGET/"
if ! cmp -s "$HERE/package-lock.json" "$TARGET/node_modules/.package-lock.json.installed" 2>/dev/null; then
    (cd "$TARGET" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false >&2)
    cp "$HERE/package-lock.json" "$TARGET/node_modules/.package-lock.json.installed"
fi
echo "$(cd "$TARGET" && pwd -P)/validate.mjs"
