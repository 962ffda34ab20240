#!/bin/sh
# Example firmware_update command for the exec adapter. Usage: flash.sh STATE_DIR.
# Steward passes the request as JSON on stdin and the same facts in STEWARD_* variables; this
# script uses the variables (plain sh has no JSON parser). stdout is for JSON lines only:
# progress per component, then one result line. Chatter goes to stderr.
state=${1:?usage: flash.sh STATE_DIR}
cat > /dev/null
echo "$STEWARD_TASK_KEY $STEWARD_RACK_ID -> $STEWARD_FIRMWARE_VERSION" >> "$state/started.log"
result=''
for c in $STEWARD_COMPONENTS; do
  echo "{\"component\":\"$c\",\"status\":\"running\",\"message\":\"flashing $STEWARD_FIRMWARE_VERSION\"}"
  sleep 1
  echo "$STEWARD_FIRMWARE_VERSION" > "$state/$c.fw"
  echo "flashed $c" >&2
  result="$result${result:+,}\"$c\":{\"status\":\"completed\",\"message\":\"now $STEWARD_FIRMWARE_VERSION\"}"
done
echo "{\"result\":{$result}}"
