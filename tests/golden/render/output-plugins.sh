# output_plugin_libraries (PostgreSQL 15.19+): add the engine's output plugins when the server knows the setting
# <lib/sh/node-config.sh>
write_output_plugins /var/lib/pulumi-bdr/alpha/data/pulumi-bdr-output-plugins.conf /usr/lib/postgresql/15/bin/postgres /var/lib/pulumi-bdr/alpha/data pglogical_output
