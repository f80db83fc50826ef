#!/usr/bin/env bash
# Prints, one per line, the Debian/Ubuntu packages that hold the shared
# libraries the given binaries load (ldd + dpkg -S), so that the runtime
# image installs exactly what the build stage linked against, whatever the
# distribution release (bookworm's libgrpc++1.51, noble's libgrpc++1.51t64).
# Libraries under /usr/local/cuda* are left out: the nvidia/cuda runtime image
# ships them. Exits non-zero when a library is missing or owned by no package.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }

owner() {  # owner PATH -> package name, trying the merged-/usr spellings too
  local path=$1 candidate
  for candidate in "$path" "$(realpath -m "$path")" "${path#/usr}" "/usr$path"; do
    if out=$(dpkg-query -S "$candidate" 2>/dev/null); then
      echo "${out%%:*}" | head -n1
      return 0
    fi
  done
  return 1
}

status=0
declare -A packages=()
for binary in "$@"; do
  while read -r line; do
    case $line in
      *"not found"*) echo "runtime-packages: $binary: $line" >&2; status=1; continue ;;
    esac
    path=$(awk '$2 == "=>" && $3 ~ /^\// {print $3}' <<<"$line")
    [ -n "$path" ] || continue
    case $path in /usr/local/cuda*) continue ;; esac
    if pkg=$(owner "$path"); then
      packages[$pkg]=1
    else
      echo "runtime-packages: $binary: no package owns $path" >&2
      status=1
    fi
  done < <(ldd "$binary")
done
[ ${#packages[@]} -eq 0 ] || printf '%s\n' "${!packages[@]}" | sort
exit $status
