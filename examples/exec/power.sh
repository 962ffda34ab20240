#!/bin/sh
# Example power command for the exec adapter. Usage: power.sh STATE_DIR on|off|cycle.
state=${1:?usage: power.sh STATE_DIR on|off|cycle}
action=${2:?usage: power.sh STATE_DIR on|off|cycle}
cat > /dev/null
result=''
for c in $STEWARD_COMPONENTS; do
  case $action in
    on|cycle) echo on > "$state/$c.power" ;;
    off) echo off > "$state/$c.power" ;;
    *) echo "unknown action $action" >&2; exit 2 ;;
  esac
  result="$result${result:+,}\"$c\":\"completed\""
done
echo "{\"result\":{$result}}"
