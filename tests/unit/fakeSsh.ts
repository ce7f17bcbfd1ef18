/**
 * A stand-in `ssh` for unit tests of the runner-side SSH scripts (lib/sh/ssh-run.sh): put on PATH
 * as `ssh`, it appends to the file named by FAKE_SSH_LOG what it was given (its arguments, the
 * destination and command, the key file's mode and text, how many PULUMI_BDR_SSH_KEY_* variables
 * it inherited), runs the LocalCommand as ssh does after a login, notes whether the key file is
 * still there, then runs the remote command here, stdin passed through.
 */
import * as fs from "fs";

/** The stand-in ssh: records its arguments and the key file's mode and text, then runs the command. */
export const FAKE_SSH = `#!/bin/bash
log=$FAKE_SSH_LOG
args=("$@")
kf="" lc=""
while [ $# -gt 0 ]; do
  case "$1" in
    -i) kf=$2; shift 2 ;;
    -p) shift 2 ;;
    -o) case "$2" in LocalCommand=*) lc=\${2#LocalCommand=} ;; esac; shift 2 ;;
    *) break ;;
  esac
done
{
  printf 'argv=%s\\n' "\${args[*]}"
  printf 'dest=%s\\ncmd=%s\\n' "$1" "$2"
  printf 'keymode=%s\\n' "$(stat -c %a "$kf")"
  printf 'key=%s\\n' "$(base64 -w0 <"$kf")"
  printf 'envkeys=%s\\n' "$(env | grep -c '^PULUMI_BDR_SSH_KEY' || true)"
} >>"$log"
[ -z "$lc" ] || sh -c "$lc"
printf 'keyafterlogin=%s\\n' "$([ -e "$kf" ] && echo present || echo gone)" >>"$log"
exec bash -c "$2"
`;

/** The stand-in's log: each `name=value` line's values, by name, in order. */
export function readFakeSshLog(file: string): Record<string, string[]> {
  const entries: Record<string, string[]> = {};
  for (const line of fs.readFileSync(file, "utf8").trim().split("\n")) {
    const i = line.indexOf("=");
    (entries[line.slice(0, i)] ??= []).push(line.slice(i + 1));
  }
  return entries;
}
