# Sourced by puppet-stack.sh start, with DIR empty and set -eE. Sets up and
# launches postgres, PuppetDB and Puppet Server in DIR; see puppet-stack.sh.
t0=$SECONDS
free_port PG_PORT
free_port PS_PORT
free_port PDB_PORT
free_port PDB_SSL_PORT
PS=$DIR/ps PDB=$DIR/pdb PG=$DIR/pg
mkdir -p "$PS"/{etc,conf.d,services.d,ssl,ca,var,log,run} "$PS/code/environments/production/manifests" \
  "$PDB"/{conf.d,ssl,var,log,run} "$PG" "$DIR/client" "$DIR/agents"

# --- autosign: DIR/autosign is what Puppet Server runs; it execs the target
cat >"$DIR/autosign-refuse.sh" <<'EOF'
#!/bin/sh
echo "refused: no autosign policy configured for $1" >&2
exit 1
EOF
echo "${PUPPET_STACK_AUTOSIGN:-$DIR/autosign-refuse.sh}" >"$DIR/autosign.target"
cat >"$DIR/autosign" <<EOF
#!/bin/sh
t=\$(cat "$DIR/autosign.target" 2>/dev/null)
[ -n "\$t" ] && [ -x "\$t" ] || { echo "refused: autosign target '\$t' is not executable" >&2; exit 1; }
exec "\$t" "\$@"
EOF
chmod 755 "$DIR/autosign" "$DIR/autosign-refuse.sh"
chmod 644 "$DIR/autosign.target"

# --- PostgreSQL: a private cluster (the image's 15/main stays down)
chown postgres:postgres "$PG"
asuser() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups "$@"; }
(cd "$PG" && asuser postgres "$PGBIN/initdb" -D "$PG/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$PG/initdb.log")
(cd "$PG" && asuser postgres "$PGBIN/pg_ctl" -D "$PG/data" -l "$PG/pg.log" -w \
  -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG -c fsync=off -c full_page_writes=off" start 9>&- >/dev/null)
PG_PID=$(head -n1 "$PG/data/postmaster.pid")
psql_() { psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }
psql_ -c "CREATE ROLE puppetdb LOGIN PASSWORD 'puppetdb'"
psql_ -c "CREATE DATABASE puppetdb OWNER puppetdb ENCODING 'UTF8' TEMPLATE template0"
psql_ -d puppetdb -c "CREATE EXTENSION pg_trgm"
log "postgres up on $PG_PORT after $((SECONDS - t0))s"

# --- Puppet Server configuration, all under DIR/ps
cat >"$PS/etc/puppet.conf" <<EOF
[main]
ssldir = $PS/ssl
cadir = $PS/ca
vardir = $PS/var
logdir = $PS/log
rundir = $PS/run
certname = puppet
server = 127.0.0.1
ca_server = 127.0.0.1
serverport = $PS_PORT
ca_port = $PS_PORT
keylength = 2048
[server]
certname = puppet
dns_alt_names = puppet,localhost
autosign = $DIR/autosign
EOF
cp /etc/puppet/hiera.yaml "$PS/etc/"
cp /etc/puppet/puppetserver/services.d/* "$PS/services.d/"
cp /etc/puppet/puppetserver/conf.d/{metrics.conf,web-routes.conf} "$PS/conf.d/"
sed -e "s#^\( *server-conf-dir:\).*#\1 $PS/etc#" -e "s#^\( *server-code-dir:\).*#\1 $PS/code#" \
  -e "s#^\( *server-var-dir:\).*#\1 $PS/var#" -e "s#^\( *server-run-dir:\).*#\1 $PS/run#" \
  -e "s#^\( *server-log-dir:\).*#\1 $PS/log#" \
  /etc/puppet/puppetserver/conf.d/puppetserver.conf >"$PS/conf.d/puppetserver.conf"
grep -q "server-conf-dir: $PS/etc" "$PS/conf.d/puppetserver.conf"
cat >"$PS/conf.d/webserver.conf" <<EOF
webserver: {
    access-log-config: $PS/request-logging.xml
    client-auth: want
    ssl-host: 127.0.0.1
    ssl-port: $PS_PORT
}
EOF
echo "global: { logging-config: $PS/logback.xml }" >"$PS/conf.d/global.conf"
echo "certificate-authority: { allow-subject-alt-names: true }" >"$PS/conf.d/ca.conf"
sed "s#/var/log/puppetserver#$PS/log#g" /etc/puppet/puppetserver/logback.xml >"$PS/logback.xml"
sed "s#/var/log/puppetserver#$PS/log#g" /etc/puppet/puppetserver/request-logging.xml >"$PS/request-logging.xml"
# The worker's certname may read, revoke and delete single certificates
# (what it does; no listing, no /clean: internal/puppet/README.md); the pp_cli_auth entry
# keeps `puppetserver ca` working (the first matching rule wins).
awk -v cert="$WORKER_CERT" '
  { print }
  !done && /rules: *\[/ {
    print "        {"
    print "            match-request: {"
    print "                path: \"^/puppet-ca/v1/certificate_status/\""
    print "                type: regex"
    print "                method: [get, put, delete]"
    print "            }"
    print "            allow: [ { extensions: { pp_cli_auth: \"true\" } }, \"" cert "\" ]"
    print "            sort-order: 400"
    print "            name: \"vmglue operator cert admin\""
    print "        },"
    done = 1
  }' /etc/puppet/puppetserver/conf.d/auth.conf >"$PS/conf.d/auth.conf"
grep -q "vmglue operator cert admin" "$PS/conf.d/auth.conf"

# --- CA, server cert, client certs (offline: our port is still closed)
CA_CLI=(ruby /usr/share/puppetserver/cli/apps/ca)
"${CA_CLI[@]}" setup --config "$PS/etc/puppet.conf" --certname puppet \
  --subject-alt-names puppet,localhost,IP:127.0.0.1 >"$PS/ca-setup.log" 2>&1
cp "$PS/ssl/certs/ca.pem" "$DIR/client/ca.pem"
chown -R puppet:puppet "$PS"
log "puppet CA ready after $((SECONDS - t0))s"

# --- PuppetDB configuration, all under DIR/pdb
cat >"$PDB/conf.d/config.ini" <<EOF
[global]
vardir = $PDB/var
logging-config = $PDB/logback.xml
[command-processing]
[puppetdb]
certificate-allowlist = $PDB/allowlist
EOF
printf '%s\n' puppet "$WORKER_CERT" >"$PDB/allowlist"
cat >"$PDB/conf.d/database.ini" <<EOF
[database]
subname = //127.0.0.1:$PG_PORT/puppetdb
username = puppetdb
password = puppetdb
EOF
cat >"$PDB/conf.d/jetty.ini" <<EOF
[jetty]
host = 127.0.0.1
port = $PDB_PORT
ssl-host = 127.0.0.1
ssl-port = $PDB_SSL_PORT
ssl-key = $PDB/ssl/private.pem
ssl-cert = $PDB/ssl/public.pem
ssl-ca-cert = $PDB/ssl/ca.pem
access-log-config = $PDB/request-logging.xml
EOF
cp /etc/puppetdb/conf.d/auth.conf "$PDB/conf.d/"
cp /etc/puppetdb/bootstrap.cfg "$PDB/"
sed "s#/var/log/puppetdb#$PDB/log#g" /etc/puppetdb/logback.xml >"$PDB/logback.xml"
sed "s#/var/log/puppetdb#$PDB/log#g" /etc/puppetdb/request-logging.xml >"$PDB/request-logging.xml"
cp "$PS/ssl/certs/ca.pem" "$PDB/ssl/ca.pem"
cp "$PS/ssl/certs/puppet.pem" "$PDB/ssl/public.pem"
cp "$PS/ssl/private_keys/puppet.pem" "$PDB/ssl/private.pem"
chown -R puppetdb:puppetdb "$PDB"

# --- launch both JVMs (C1 only, small heaps: puppet.md §6)
(cd "$PDB/var" && exec setsid env HOME="$PDB/var" setpriv --reuid=puppetdb --regid=puppetdb --init-groups \
  java -XX:TieredStopAtLevel=1 -Xmx192m -Djava.security.egd=/dev/urandom -XX:OnOutOfMemoryError="kill -9 %p" \
  -cp /usr/share/puppetdb/puppetdb.jar clojure.main -m puppetlabs.puppetdb.core services \
  --config "$PDB/conf.d" --bootstrap-config "$PDB/bootstrap.cfg" --restart-file "$PDB/run/restart") \
  >"$PDB/stdout" 2>&1 </dev/null 9>&- &
PDB_PID=$!
(cd /usr/share/puppetserver && exec setsid env HOME="$PS/var" setpriv --reuid=puppet --regid=puppet --init-groups \
  java -XX:TieredStopAtLevel=1 -Xms256m -Xmx256m \
  -Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger -Djruby.lib=/usr/share/jruby/lib \
  -XX:+CrashOnOutOfMemoryError -jar /usr/share/puppetserver/puppetserver.jar \
  --config "$PS/conf.d" --bootstrap-config "$PS/services.d" --restart-file "$PS/run/restart") \
  >"$PS/stdout" 2>&1 </dev/null 9>&- &
PS_PID=$!

# --- DIR/env: everything a test (or an operator poking around) needs
cat >"$DIR/env.tmp" <<EOF
PUPPET_CA_URL=https://127.0.0.1:$PS_PORT
PUPPET_SERVER_PORT=$PS_PORT
PUPPETDB_URL=https://127.0.0.1:$PDB_SSL_PORT
PUPPETDB_HTTP_URL=http://127.0.0.1:$PDB_PORT
POSTGRES_PORT=$PG_PORT
PUPPET_CA_FILE=$DIR/client/ca.pem
PUPPET_CERT_FILE=$DIR/client/$WORKER_CERT.crt
PUPPET_KEY_FILE=$DIR/client/$WORKER_CERT.key
PUPPET_WORKER_CERTNAME=$WORKER_CERT
PUPPET_INTRUDER_CERT_FILE=$DIR/client/$INTRUDER_CERT.crt
PUPPET_INTRUDER_KEY_FILE=$DIR/client/$INTRUDER_CERT.key
PUPPET_SERVER_CONFDIR=$PS/etc
PUPPET_SERVER_SSLDIR=$PS/ssl
PUPPET_AGENTS_DIR=$DIR/agents
PUPPET_AUTOSIGN_TARGET_FILE=$DIR/autosign.target
PUPPET_SERVER_LOG=$PS/log/puppetserver.log
PUPPETDB_LOG=$PDB/log/puppetdb.log
PUPPETSERVER_PID=$PS_PID
PUPPETDB_PID=$PDB_PID
POSTGRES_PID=$PG_PID
EOF
mv "$DIR/env.tmp" "$DIR/env"
echo launched >"$DIR/status"
log "launched puppetserver (pid $PS_PID, port $PS_PORT) and puppetdb (pid $PDB_PID, port $PDB_SSL_PORT) after $((SECONDS - t0))s"
do_wait launched
log "servers answer after $((SECONDS - t0))s"
# Plain node certs (no pp_cli_auth), signed through the running CA: the
# worker's is let in by the auth.conf rule and the PuppetDB allowlist only.
"${CA_CLI[@]}" generate --config "$PS/etc/puppet.conf" --certname "$WORKER_CERT,$INTRUDER_CERT" \
  >"$PS/ca-generate.log" 2>&1
for c in "$WORKER_CERT" "$INTRUDER_CERT"; do
  cp "$PS/ssl/certs/$c.pem" "$DIR/client/$c.crt"
  cp "$PS/ssl/private_keys/$c.pem" "$DIR/client/$c.key"
done
chmod 600 "$DIR"/client/*.key
echo up >"$DIR/status"
log "ready after $((SECONDS - t0))s; env in $DIR/env"
