# output_plugin_libraries (PostgreSQL 15.19+): add the engine's output plugins when the server knows the setting
opl_file=/var/lib/pulumi-bdr/alpha/data/pulumi-bdr-output-plugins.conf
if opl_current=$(as_pg /usr/lib/postgresql/15/bin/postgres -D /var/lib/pulumi-bdr/alpha/data -C output_plugin_libraries 2>/dev/null); then
  opl_list=""
  IFS=',' read -r -a opl_items <<<"$opl_current"
  for opl_item in "${opl_items[@]}"; do
    opl_item="${opl_item#"${opl_item%%[![:space:]]*}"}"; opl_item="${opl_item%"${opl_item##*[![:space:]]}"}"
    if [ -n "$opl_item" ]; then opl_list="${opl_list:+$opl_list, }$opl_item"; fi
  done
  for opl_lib in pglogical_output; do
    case ", $opl_list, " in *", $opl_lib, "*) ;; *) opl_list="${opl_list:+$opl_list, }$opl_lib" ;; esac
  done
  opl_quoted="${opl_list//\\/\\\\}"; opl_quoted="${opl_quoted//\'/\'\'}"
  opl_text=$(printf '%s\n%s' '# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.' "output_plugin_libraries = '$opl_quoted'")
  log "output_plugin_libraries = '$opl_list'"
else
  opl_text='# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.'
  log "server has no output_plugin_libraries setting: nothing to allow"
fi
printf '%s\n' "$opl_text" | safe_write "$opl_file" 0644 || true
