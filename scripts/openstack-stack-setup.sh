# Sourced by openstack-stack.sh start, with DIR empty and set -eE. Writes the
# configuration, starts every service in DIR and creates the cloud's
# resources; see openstack-stack.sh.
t0=$SECONDS
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV || true
export PATH=/usr/sbin:/usr/bin:/sbin:/bin # Debian's python3, not a pyenv one

# Every port is free (see free_port in stack-lib.sh) or the one set in
# OPENSTACK_STACK_<NAME>_PORT, refused when busy.
for n in MYSQL AMQP EPMD DIST KEYSTONE PLACEMENT GLANCE NOVA NEUTRON; do
  o=OPENSTACK_STACK_${n}_PORT
  free_port $n "${!o:-}"
done
PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
H=127.0.0.1
DB="mysql+pymysql://stack:$PASSWORD@$H:$MYSQL"
AMQP_URL="rabbit://guest:guest@$H:$AMQP/"
KS="http://$H:$KEYSTONE/v3"
mkdir -p "$DIR"/{etc,log,run,pids,lock,data} "$DIR"/data/{glance,keystone,neutron,nova}

cat >"$DIR/env" <<EOF
OS_AUTH_URL=$KS
OS_IDENTITY_API_VERSION=3
OS_USERNAME=admin
OS_PASSWORD=$PASSWORD
OS_PROJECT_NAME=admin
OS_USER_DOMAIN_NAME=Default
OS_PROJECT_DOMAIN_NAME=Default
OS_DOMAIN_NAME=Default
OS_REGION_NAME=RegionOne
OS_INTERFACE=public
OPENSTACK_AMQP_URL=amqp://guest:guest@$H:$AMQP/
OPENSTACK_COMPUTE_HOST=vmglue-compute
OPENSTACK_NETWORK=vmglue-net
OPENSTACK_FLAVOR=vmglue-tiny
OPENSTACK_IMAGE=vmglue-image
MYSQL_PORT=$MYSQL
AMQP_PORT=$AMQP
EPMD_PORT=$EPMD
DIST_PORT=$DIST
KEYSTONE_PORT=$KEYSTONE
PLACEMENT_PORT=$PLACEMENT
GLANCE_PORT=$GLANCE
NOVA_PORT=$NOVA
NEUTRON_PORT=$NEUTRON
EOF
chmod 600 "$DIR/env"

# spawn NAME CMD...: CMD as a process group of its own, output to DIR/log.
spawn() {
  local name=$1
  shift
  setsid "$@" >>"$DIR/log/$name.out" 2>&1 </dev/null &
  echo $! >"$DIR/pids/$name.pid"
}
# await NAME SECONDS CHECK...: run CHECK until it succeeds; fail when NAME dies.
await() {
  local name=$1 secs=$2
  shift 2
  for _ in $(seq 1 $((secs * 2))); do
    "$@" >/dev/null 2>&1 && return 0
    alive "$(cat "$DIR/pids/$name.pid")" || { tail -n 30 "$DIR/log/$name".* >&2 || true; log "$name died"; return 1; }
    sleep 0.5
  done
  log "$name: not ready after ${secs}s"
  return 1
}
http_ok() { curl -fsS -o /dev/null -m 5 "$1"; }
tcp_ok() { (exec 3<>"/dev/tcp/$H/$1"); }

# [keystone_authtoken]-style credentials: every service acts as the admin
# (a test cloud; production clouds give each service its own user).
creds() {
  cat <<EOF
auth_url = $KS
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = admin
username = admin
password = $PASSWORD
region_name = RegionOne
EOF
}

# --- configuration
mkdir -p "$DIR"/etc/{keystone,placement,glance,nova,neutron}
cat >"$DIR/etc/keystone/keystone.conf" <<EOF
[DEFAULT]
log_file = $DIR/log/keystone.log
[database]
connection = $DB/keystone
[token]
provider = fernet
[fernet_tokens]
key_repository = $DIR/data/keystone/fernet
[fernet_receipts]
key_repository = $DIR/data/keystone/fernet
[credential]
key_repository = $DIR/data/keystone/credential
EOF
cat >"$DIR/etc/placement/placement.conf" <<EOF
[DEFAULT]
log_file = $DIR/log/placement.log
[placement_database]
connection = $DB/placement
[api]
auth_strategy = keystone
[keystone_authtoken]
www_authenticate_uri = $KS
$(creds)
EOF
cp "$SHARE/glance-api-paste.ini" "$DIR/etc/glance/"
cat >"$DIR/etc/glance/glance-api.conf" <<EOF
[DEFAULT]
bind_host = $H
bind_port = $GLANCE
workers = 0
log_file = $DIR/log/glance-api.log
enabled_backends = file:file
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = $DIR/data/glance/images/
[os_glance_staging_store]
filesystem_store_datadir = $DIR/data/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $DIR/data/glance/tasks/
[database]
connection = $DB/glance
[keystone_authtoken]
www_authenticate_uri = $KS
$(creds)
[paste_deploy]
flavor = keystone
config_file = $DIR/etc/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = $DIR/lock
EOF

# Neutron without agents: the stock ML2 drivers bind a port only where an L2
# agent runs, and Nova fails a build whose port is unbound. This driver,
# registered by an entry point on neutron-server's PYTHONPATH only, binds
# every port to its first segment.
mkdir -p "$DIR/pylib/vmglue_bindall-1.0.dist-info"
cat >"$DIR/pylib/vmglue_bindall.py" <<'EOF'
"""ML2 mechanism driver for agent-less test clouds: binds every port."""
from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class BindAll(api.MechanismDriver):
    def initialize(self):
        pass

    def bind_port(self, context):
        for seg in context.segments_to_bind:
            context.set_binding(seg[api.ID], portbindings.VIF_TYPE_OVS,
                                {portbindings.CAP_PORT_FILTER: False},
                                status=constants.PORT_STATUS_ACTIVE)
            return
EOF
printf 'Metadata-Version: 2.1\nName: vmglue-bindall\nVersion: 1.0\n' >"$DIR/pylib/vmglue_bindall-1.0.dist-info/METADATA"
printf '[neutron.ml2.mechanism_drivers]\nvmglue_bindall = vmglue_bindall:BindAll\n' \
  >"$DIR/pylib/vmglue_bindall-1.0.dist-info/entry_points.txt"
cp "$SHARE/neutron-api-paste.ini" "$DIR/etc/neutron/api-paste.ini"
cat >"$DIR/etc/neutron/neutron.conf" <<EOF
[DEFAULT]
bind_host = $H
bind_port = $NEUTRON
core_plugin = ml2
service_plugins =
auth_strategy = keystone
transport_url = $AMQP_URL
api_paste_config = $DIR/etc/neutron/api-paste.ini
state_path = $DIR/data/neutron
api_workers = 0
rpc_workers = 1
rpc_state_report_workers = 0
dhcp_agent_notification = false
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
log_file = $DIR/log/neutron-server.log
[database]
connection = $DB/neutron
[keystone_authtoken]
www_authenticate_uri = $KS
$(creds)
[nova]
$(creds)
[oslo_concurrency]
lock_path = $DIR/lock
[ml2]
type_drivers = flat
tenant_network_types =
mechanism_drivers = vmglue_bindall
extension_drivers = port_security
[ml2_type_flat]
flat_networks = physnet1
EOF

cp "$SHARE/nova-api-paste.ini" "$DIR/etc/nova/api-paste.ini"
sed -i "s|/etc/nova/healthcheck_disable|$DIR/run/nova_healthcheck_disable|" "$DIR/etc/nova/api-paste.ini"
# Notifications as an operator would set them for vmglue (README "OpenStack"):
# both formats, the oslo.messaging 2.0 envelope, instance.update on every
# vm and task state change. The fake driver keeps instances in
# nova-compute's memory: the power-state sync must not fight it.
cat >"$DIR/etc/nova/nova.conf" <<EOF
[DEFAULT]
host = vmglue-compute
my_ip = $H
compute_driver = fake.FakeDriver
transport_url = $AMQP_URL
state_path = $DIR/data/nova
instances_path = $DIR/data/nova/instances
enabled_apis = osapi_compute
osapi_compute_listen = $H
osapi_compute_listen_port = $NOVA
osapi_compute_workers = 1
vif_plugging_is_fatal = false
vif_plugging_timeout = 0
sync_power_state_interval = -1
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $DIR/etc/nova/api-paste.ini
[api_database]
connection = $DB/nova_api
[database]
connection = $DB/nova
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 30
[keystone_authtoken]
www_authenticate_uri = $KS
$(creds)
[placement]
$(creds)
[neutron]
$(creds)
[glance]
region_name = RegionOne
[vnc]
enabled = false
[oslo_concurrency]
lock_path = $DIR/lock
[notifications]
notification_format = both
notify_on_state_change = vm_and_task_state
[oslo_messaging_notifications]
driver = messagingv2
EOF

# pymain PROG MODULE ARGS...: the console script PROG (the service packages
# that would install it are not installed), as MODULE's main.
main_of() { echo "import sys; from $2 import main; sys.argv[0] = '$1'; sys.exit(main())"; }
pymain() {
  local code
  code=$(main_of "$1" "$2")
  shift 2
  "$PY" -c "$code" "$@"
}

# --- MariaDB and RabbitMQ (its own epmd, node and cookie, all in DIR)
mariadb-install-db --no-defaults --user=root --datadir="$DIR/data/mysql" --skip-test-db \
  --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1
spawn mariadb /usr/sbin/mariadbd --no-defaults --user=root --datadir="$DIR/data/mysql" \
  --socket="$DIR/run/mysql.sock" --port="$MYSQL" --bind-address=$H --skip-name-resolve \
  --pid-file="$DIR/run/mariadb.pid" --log-error="$DIR/log/mariadb.log" --skip-log-bin \
  --innodb-buffer-pool-size=128M --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
  --max-connections=1000 --character-set-server=utf8mb3 --collation-server=utf8mb3_general_ci
mkdir -p "$DIR/rabbit" "$DIR/log/rabbit"
cat >"$DIR/rabbit/rabbitmq.conf" <<EOF
listeners.tcp.1 = $H:$AMQP
loopback_users.guest = true
vm_memory_high_watermark.absolute = 512MiB
disk_free_limit.absolute = 100MB
log.file.level = warning
EOF
echo "[]." >"$DIR/rabbit/enabled_plugins"
rabbit_env() {
  export HOME="$DIR/rabbit" RABBITMQ_NODENAME=vmglue@localhost RABBITMQ_NODE_IP_ADDRESS=$H \
    RABBITMQ_NODE_PORT=$AMQP RABBITMQ_DIST_PORT=$DIST ERL_EPMD_PORT=$EPMD ERL_EPMD_ADDRESS=$H \
    RABBITMQ_MNESIA_BASE="$DIR/rabbit/mnesia" RABBITMQ_LOG_BASE="$DIR/log/rabbit" \
    RABBITMQ_CONFIG_FILE="$DIR/rabbit/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/rabbit/enabled_plugins" \
    RABBITMQ_PID_FILE="$DIR/run/rabbit.pid" RABBITMQ_USE_LONGNAME=false
}
spawn epmd /usr/bin/epmd -port "$EPMD" -address $H
(rabbit_env && spawn rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server)
mysql_() { mariadb --no-defaults -S "$DIR/run/mysql.sock" -uroot "$@"; }
await mariadb 60 mysql_ -e 'select 1'
log "mariadb up after $((SECONDS - t0))s"
{
  echo "CREATE USER 'stack'@'$H' IDENTIFIED BY '$PASSWORD'; GRANT ALL PRIVILEGES ON *.* TO 'stack'@'$H';"
  for d in keystone placement glance nova_api nova nova_cell0 neutron; do echo "CREATE DATABASE $d CHARACTER SET utf8;"; done
} | mysql_

# --- schemas, in parallel
NOVA_CONF=(--config-file "$DIR/etc/nova/nova.conf")
pids=()
keystone-manage --config-file "$DIR/etc/keystone/keystone.conf" db_sync >"$DIR/log/sync-keystone.log" 2>&1 &
pids+=($!)
placement-manage --config-file "$DIR/etc/placement/placement.conf" db sync >"$DIR/log/sync-placement.log" 2>&1 &
pids+=($!)
pymain glance-manage glance.cmd.manage --config-file "$DIR/etc/glance/glance-api.conf" db sync >"$DIR/log/sync-glance.log" 2>&1 &
pids+=($!)
PYTHONPATH="$DIR/pylib" pymain neutron-db-manage neutron.db.migration.cli --config-file "$DIR/etc/neutron/neutron.conf" \
  upgrade heads >"$DIR/log/sync-neutron.log" 2>&1 &
pids+=($!)
(
  pymain nova-manage nova.cmd.manage "${NOVA_CONF[@]}" api_db sync
  pymain nova-manage nova.cmd.manage "${NOVA_CONF[@]}" cell_v2 map_cell0 --database_connection "$DB/nova_cell0"
  pymain nova-manage nova.cmd.manage "${NOVA_CONF[@]}" cell_v2 create_cell --name cell1
  pymain nova-manage nova.cmd.manage "${NOVA_CONF[@]}" db sync
) >"$DIR/log/sync-nova.log" 2>&1 &
pids+=($!)
for p in "${pids[@]}"; do wait "$p" || { tail -n 20 "$DIR"/log/sync-*.log >&2; log "a schema sync failed"; false; }; done
log "schemas synced after $((SECONDS - t0))s"
KM=(keystone-manage --config-file "$DIR/etc/keystone/keystone.conf")
{
  "${KM[@]}" fernet_setup --keystone-user root --keystone-group root
  "${KM[@]}" credential_setup --keystone-user root --keystone-group root
  "${KM[@]}" bootstrap --bootstrap-password "$PASSWORD" --bootstrap-region-id RegionOne \
    --bootstrap-admin-url "$KS/" --bootstrap-internal-url "$KS/" --bootstrap-public-url "$KS/"
} >"$DIR/log/keystone-manage.log" 2>&1

# --- API services. uwsgi's --http-socket closes every connection after the
# response without saying so; keystoneauth would reuse it and fail.
UWSGI=(uwsgi --plugin python3 --master --die-on-term --need-app --processes 1 --threads 4
  --buffer-size 65535 --add-header Connection:close)
spawn keystone "${UWSGI[@]}" --http-socket "$H:$KEYSTONE" --wsgi-file /usr/bin/keystone-wsgi-public \
  --env OS_KEYSTONE_CONFIG_DIR="$DIR/etc/keystone" --env OS_KEYSTONE_CONFIG_FILES=keystone.conf
spawn placement "${UWSGI[@]}" --http-socket "$H:$PLACEMENT" --wsgi-file /usr/bin/placement-api \
  --env OS_PLACEMENT_CONFIG_DIR="$DIR/etc/placement"
spawn glance-api "$PY" -c "$(main_of glance-api glance.cmd.api)" --config-file "$DIR/etc/glance/glance-api.conf"
spawn neutron-server env PYTHONPATH="$DIR/pylib" "$PY" -c "$(main_of neutron-server neutron.cmd.eventlet.server)" \
  --config-file "$DIR/etc/neutron/neutron.conf"
await rabbitmq 120 tcp_ok "$AMQP"
log "rabbitmq up after $((SECONDS - t0))s"
await keystone 120 http_ok "$KS"
log "keystone up after $((SECONDS - t0))s"
# Nobody consumes the default queues oslo.messaging declares for each
# notification topic: cap them, or a long test run fills the memory.
(rabbit_env && /usr/lib/rabbitmq/bin/rabbitmqctl set_policy --apply-to queues default-notification-queues \
  '^(versioned_)?notifications\.' '{"max-length":10000,"message-ttl":3600000}') >"$DIR/log/rabbit-policy.log" 2>&1

# --- the cloud: endpoints, then (once Nova's compute service is up) a
# flavor, an image and a shared dual-stack network in documentation ranges
# (addresses are database records: no packet ever goes there)
set -a
. "$DIR/env"
set +a
cat >"$DIR/cloud.py" <<'EOF'
import os, sys, time
import openstack

c = openstack.connect(auth_url=os.environ["OS_AUTH_URL"], username="admin",
                      password=os.environ["OS_PASSWORD"], project_name="admin",
                      user_domain_name="Default", project_domain_name="Default",
                      region_name="RegionOne", identity_api_version="3")

def until(what, fn, secs):
    end = time.time() + secs
    while time.time() < end:
        try:
            if fn():
                return
        except Exception:
            pass
        time.sleep(1)
    sys.exit("timeout: " + what)

if sys.argv[1] == "endpoints":
    for name, typ, port, path in [("glance", "image", "GLANCE_PORT", ""),
                                  ("placement", "placement", "PLACEMENT_PORT", ""),
                                  ("nova", "compute", "NOVA_PORT", "/v2.1"),
                                  ("neutron", "network", "NEUTRON_PORT", "")]:
        s = c.identity.create_service(name=name, type=typ, enabled=True)
        url = "http://127.0.0.1:%s%s" % (os.environ[port], path)
        for iface in ("public", "internal", "admin"):
            c.identity.create_endpoint(service_id=s.id, interface=iface, url=url, region_id="RegionOne")
elif sys.argv[1] == "ready":
    until("hypervisor in nova and placement", lambda: list(c.compute.hypervisors())
          and list(c.placement.resource_providers()), 120)
else:
    c.compute.create_flavor(name=os.environ["OPENSTACK_FLAVOR"], ram=64, vcpus=1, disk=1)
    img = c.image.create_image(name=os.environ["OPENSTACK_IMAGE"], disk_format="raw",
                               container_format="bare", visibility="public", data=b"\0" * 1024)
    net = c.network.create_network(name=os.environ["OPENSTACK_NETWORK"], shared=True,
                                   provider_network_type="flat", provider_physical_network="physnet1")
    c.network.create_subnet(name="vmglue-v4", network_id=net.id, ip_version=4, cidr="192.0.2.0/24",
                            gateway_ip="192.0.2.1", enable_dhcp=False)
    c.network.create_subnet(name="vmglue-v6", network_id=net.id, ip_version=6, cidr="2001:db8::/64",
                            ipv6_address_mode="dhcpv6-stateful", enable_dhcp=True)
    until("image active", lambda: c.image.get_image(img.id).status == "active", 60)
    fl = c.compute.find_flavor(os.environ["OPENSTACK_FLAVOR"])
    with open(os.path.join(sys.argv[2], "env"), "a") as f:
        f.write("OPENSTACK_FLAVOR_ID=%s\nOPENSTACK_IMAGE_ID=%s\nOPENSTACK_NETWORK_ID=%s\n" % (fl.id, img.id, net.id))
    until("nova-compute up", lambda: any(s.binary == "nova-compute" and s.state == "up"
                                         for s in c.compute.services()), 300)
EOF
"$PY" "$DIR/cloud.py" endpoints >"$DIR/log/cloud.log" 2>&1
log "endpoints created after $((SECONDS - t0))s"
# Nova's services look the placement endpoint up when they start.
for s in api:api_os_compute conductor:conductor scheduler:scheduler compute:compute; do
  spawn "nova-${s%%:*}" "$PY" -c "$(main_of "nova-${s%%:*}" "nova.cmd.${s#*:}")" "${NOVA_CONF[@]}" --log-file "$DIR/log/nova-${s%%:*}.log"
done
await placement 180 http_ok "http://$H:$PLACEMENT/"
await glance-api 180 http_ok "http://$H:$GLANCE/"
await neutron-server 180 http_ok "http://$H:$NEUTRON/"
await nova-api 180 http_ok "http://$H:$NOVA/"
log "APIs up after $((SECONDS - t0))s"
"$PY" "$DIR/cloud.py" resources "$DIR" >>"$DIR/log/cloud.log" 2>&1
pymain nova-manage nova.cmd.manage "${NOVA_CONF[@]}" cell_v2 discover_hosts >"$DIR/log/discover-hosts.log" 2>&1
"$PY" "$DIR/cloud.py" ready >>"$DIR/log/cloud.log" 2>&1
echo up >"$DIR/status"
log "ready after $((SECONDS - t0))s: . $DIR/env"
