#!/usr/bin/env bash
# The way DNS is kept in step with OpenNebula today: a shell hook per VM
# event (HEM: ARGUMENTS="$TEMPLATE running|done", ARGUMENTS_STDIN=yes) that
# decodes the base64 VM document, greps NAME and the first NIC's IP, and runs
# ONE nsupdate process with TWO sends: the A record in the forward zone, then
# the PTR record in the reverse zone. RUNNING replaces both records, DONE
# deletes them. No ownership check, no retry, no ordering: what typical
# scripts do.
#
# Such scripts keep their settings at the top; the benchmark sets them in the
# environment to point at its own BIND.
set -euo pipefail

DNS_SERVER=${DNS_SERVER:-127.0.0.1}
DNS_PORT=${DNS_PORT:-53}
KEYFILE=${KEYFILE:-/etc/one/dns-update.key}
DOMAIN=${DOMAIN:-cloud.test}
REVZONE=${REVZONE:-10.in-addr.arpa}
TTL=${TTL:-60}

# HEM writes no trailing newline: read returns 1 at EOF but fills the words.
read -r template action || true
xml=$(printf '%s' "$template" | base64 -d)
name=$(grep -m1 '<NAME>' <<<"$xml" | sed -e 's/.*<NAME><!\[CDATA\[//' -e 's/\]\]><\/NAME>.*//')
ip=$(grep -m1 '<IP>' <<<"$xml" | sed -e 's/.*<IP><!\[CDATA\[//' -e 's/\]\]><\/IP>.*//')
if [ -z "$name" ] || [ -z "$ip" ]; then
	echo "legacy-hook: no NAME or IP in the template" >&2
	exit 0
fi
IFS=. read -r o1 o2 o3 o4 <<<"$ip"
fqdn="$name.$DOMAIN."
ptr="$o4.$o3.$o2.$o1.in-addr.arpa."

case "$action" in
running)
	nsupdate -k "$KEYFILE" <<EOF
server $DNS_SERVER $DNS_PORT
zone $DOMAIN.
update delete $fqdn A
update add $fqdn $TTL A $ip
send
zone $REVZONE.
update delete $ptr PTR
update add $ptr $TTL PTR $fqdn
send
EOF
	;;
done)
	nsupdate -k "$KEYFILE" <<EOF
server $DNS_SERVER $DNS_PORT
zone $DOMAIN.
update delete $fqdn A
send
zone $REVZONE.
update delete $ptr PTR
send
EOF
	;;
*) exit 0 ;;
esac
