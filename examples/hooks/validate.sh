#!/bin/sh
# Demo validate hook: after a rack's task completed, a site would run its health checks (burn-in,
# NVLink and power checks) before the rack goes back to its scheduler. Exit 0 passes; anything
# else fails the target. Hooks must be idempotent: after a crash the same invocation
# (STEWARD_HOOK_INVOCATION) runs again.
cat > /dev/null
echo "validated rack ${STEWARD_RACK_ID} (attempt ${STEWARD_ATTEMPT})"
