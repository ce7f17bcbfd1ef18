# pulumi-bdr step bundle: bash -s -- create|update|delete|forget, secret lines after it
case "${1:-}" in
create)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/a/run
PG_PORT=5432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/a/pgpass
# <lib/sh/common.sh>

# pulumi-bdr step: the step's values
N_NAME=a
N_DIR=/var/lib/pulumi-bdr/gold/a
N_DATA=/var/lib/pulumi-bdr/gold/a/data
N_MAJOR=15
N_PACKAGES=()
N_SETTINGS_FILE=/var/lib/pulumi-bdr/gold/a/data/pulumi-bdr.conf
N_SETTINGS_TEXT='# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.
listen_addresses = '\''10.77.0.11'\''
max_replication_slots = 16
max_wal_senders = 16
max_worker_processes = 24
password_encryption = '\''scram-sha-256'\''
pglogical.conflict_resolution = '\''last_update_wins'\''
port = 5432
shared_preload_libraries = '\''pglogical'\''
track_commit_timestamp = '\''on'\''
unix_socket_directories = '\''/var/lib/pulumi-bdr/gold/a/run'\''
wal_level = '\''logical'\''
include_if_exists = '\''pulumi-bdr-output-plugins.conf'\''
'
N_HBA_TEXT='# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.
# TYPE  DATABASE       USER        ADDRESS        METHOD
local   all            "postgres"                 peer
host    "bdrdb","bdr"  "bdr"       10.77.0.11/32  scram-sha-256
host    replication    "bdr"       10.77.0.11/32  scram-sha-256
host    "bdrdb","bdr"  "bdr"       10.77.0.12/32  scram-sha-256
host    replication    "bdr"       10.77.0.12/32  scram-sha-256
host    "bdrdb","bdr"  "bdr"       10.77.0.13/32  scram-sha-256
host    replication    "bdr"       10.77.0.13/32  scram-sha-256
local   all            all                        reject
host    all            all         0.0.0.0/0      reject
host    all            all         ::/0           reject
'
N_OPL_FILE=/var/lib/pulumi-bdr/gold/a/data/pulumi-bdr-output-plugins.conf
N_OUTPUT_PLUGINS=(pglogical_output)
N_WATCHER=1
N_WATCH_TEXT='#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/a/run
PG_PORT=5432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/a/pgpass
# <lib/sh/common.sh>
# <lib/sh/pglogical-wake.sh>
# <lib/sh/pglogical-watch.sh>
'
# <lib/sh/node-server.sh>
# <lib/sh/node-config.sh>
# <lib/sh/watch-ctl.sh>
server_create
;;
delete)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/a/run
PG_PORT=5432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/a/pgpass
# <lib/sh/common.sh>

# pulumi-bdr step: the step's values
N_NAME=a
N_DIR=/var/lib/pulumi-bdr/gold/a
N_DATA=/var/lib/pulumi-bdr/gold/a/data
N_MAJOR=15
N_WATCHER=1
# <lib/sh/node-server.sh>
# <lib/sh/watch-ctl.sh>
server_delete
;;
*) printf "pulumi-bdr: this step has no operation %s\n" "${1:-}" >&2; exit 2 ;;
esac; exit "$?"
