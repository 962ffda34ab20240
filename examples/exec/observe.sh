#!/bin/sh
# Example observe command for the exec adapter: prints the fleet as a JSON array of observations.
# Usage: observe.sh STATE_DIR. A real site asks its own inventory and BMC tooling instead; here
# four racks of two compute trays and one NVLink switch keep their firmware and power in files.
state=${1:?usage: observe.sh STATE_DIR}
mkdir -p "$state"
printf '['
sep=''
for rack in rack-001 rack-002 rack-003 rack-004; do
  for c in c1 c2 s1; do
    id="$rack-$c"
    fw=1.0.0
    power=on
    if [ -e "$state/$id.fw" ]; then read -r fw < "$state/$id.fw"; fi
    if [ -e "$state/$id.power" ]; then read -r power < "$state/$id.power"; fi
    case $c in
      s*) kind=nvswitch; controller='{"state":"ready"}' ;;
      *)  kind=compute; controller='"Ready"' ;;
    esac
    printf '%s{"component_id":"%s","rack_id":"%s","kind":"%s","controller_state":%s,"power_state":"%s","firmware_version":"%s"}' \
      "$sep" "$id" "$rack" "$kind" "$controller" "$power" "$fw"
    sep=','
  done
done
printf ']\n'
