#!/bin/sh
# Demo drain hook: a site would tell its scheduler to drain the rack and wait for jobs to leave.
# Hooks must be idempotent: after a crash Steward runs the same invocation again
# (same STEWARD_HOOK_INVOCATION), so a real script checks whether the drain already happened.
cat > /dev/null
echo "drained rack ${STEWARD_RACK_ID} (attempt ${STEWARD_ATTEMPT}, invocation ${STEWARD_HOOK_INVOCATION})"
