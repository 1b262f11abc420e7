#!/bin/sh
# The stack's one-shot dagwatch job, before `dagwatch up`: migrates the store (opening it does)
# and creates the operator token the example pipelines report check results with, written to
# $DAGWATCH_TOKEN_DIR/token (a volume the pipelines mount read-only). Each start replaces the token
# and revokes the one before it; the token is never printed to the log.
set -eu
dir="${DAGWATCH_TOKEN_DIR:-/run/dagwatch}"
if [ -s "$dir/token.name" ]; then
    dagwatch token revoke --name "$(cat "$dir/token.name")" >/dev/null 2>&1 || true
fi
name="stack-pipelines-$(date -u +%Y%m%dT%H%M%S)"
umask 022
dagwatch token create --name "$name" --role operator > "$dir/token.new"
mv "$dir/token.new" "$dir/token"
echo "$name" > "$dir/token.name"
echo "dagwatch-init: store migrated, token $name written to $dir/token"
