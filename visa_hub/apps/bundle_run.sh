#!/bin/sh
# Run the apps of this visa-hub bundle on your own computer.
#
#   ./run.sh list                 the apps, versions and digests of this bundle
#   ./run.sh verify               check every image against its digest
#   ./run.sh APP [ARGS...]        run APP (its runscript, with ARGS)
#   ./run.sh exec APP CMD [ARGS]  run a command inside APP's image
#
# Uses apptainer (or singularity) if installed; otherwise squashfuse + bubblewrap (Debian: apt install squashfuse
# bubblewrap fuse3), the way unprivileged apptainer runs an image. Your home directory is bound inside.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
manifest="$here/manifest.tsv"

die() { echo "run.sh: $*" >&2; exit 1; }
entry() { awk -F '\t' -v app="$1" '$1 == app' "$manifest"; }
field() { printf '%s\n' "$1" | cut -f "$2"; }

partition_digest() {  # the sha256 of the image's squashfs partition
  tail -c +"$(($2 + 1))" "$1" | head -c "$3" | sha256sum | cut -d' ' -f1
}

run_local() {  # run_local IMAGE OFFSET MODE(run|exec) ARGS...: squashfuse + bubblewrap
  image=$1 offset=$2 mode=$3; shift 3
  command -v bwrap >/dev/null || die "neither apptainer nor bubblewrap (bwrap) is installed"
  command -v squashfuse >/dev/null || die "neither apptainer nor squashfuse is installed"
  mnt=$(mktemp -d "${TMPDIR:-/tmp}/visa-app.XXXXXX")
  squashfuse -o offset="$offset" "$image" "$mnt" || die "cannot mount $image"
  trap 'umount "$mnt" 2>/dev/null || fusermount3 -u "$mnt" 2>/dev/null || fusermount -u "$mnt"; rmdir "$mnt"' EXIT
  binds=""
  for entry in "$mnt"/* "$mnt"/.singularity.d; do
    name=${entry##*/}
    case $name in proc|sys|dev|tmp|'*') continue ;; esac
    if [ -L "$entry" ]; then binds="$binds --symlink $(readlink "$entry") /$name"
    else binds="$binds --ro-bind $entry /$name"; fi
  done
  if [ "$mode" = run ]; then set -- /.singularity.d/runscript "$@"; fi
  # shellcheck disable=SC2086
  bwrap --die-with-parent --unshare-pid $binds --proc /proc --dev /dev --ro-bind /sys /sys --bind /tmp /tmp \
    --bind "$HOME" "$HOME" --chdir "$(pwd)" --remount-ro / \
    /bin/sh -c 'for f in /.singularity.d/env/*.sh; do [ -f "$f" ] && . "$f"; done; exec "$@"' run.sh "$@"
}

[ $# -ge 1 ] || { sed -n '2,12p' "$0"; exit 2; }
case $1 in
  list)
    printf 'APP\tVERSION\tKIND\tDIGEST\n'
    awk -F '\t' '{ printf "%s\t%s\t%s\t%s\n", $1, $2, $7, $6 }' "$manifest"; exit 0 ;;
  verify)
    status=0
    while IFS="$(printf '\t')" read -r app version file offset size digest kind; do
      [ -f "$here/$file" ] || { echo "$app $version: image $file is not in this bundle"; status=1; continue; }
      actual="sha256:$(partition_digest "$here/$file" "$offset" "$size")"
      if [ "$actual" = "$digest" ]; then echo "$app $version: ok"; else
        echo "$app $version: image $file has digest $actual, expected $digest"; status=1; fi
    done < "$manifest"
    exit $status ;;
  exec) mode=exec; shift; [ $# -ge 2 ] || die "usage: ./run.sh exec APP CMD [ARGS]" ;;
  *) mode=run ;;
esac
app=$1; shift
line=$(entry "$app")
[ -n "$line" ] || die "no app $app in this bundle (./run.sh list)"
image="$here/$(field "$line" 3)"
[ -f "$image" ] || die "image $(field "$line" 3) of $app is not in this bundle (get $app $(field "$line" 2), digest $(field "$line" 6))"
for runtime in apptainer singularity; do
  if command -v "$runtime" >/dev/null && [ -z "${VISA_BUNDLE_LOCAL:-}" ]; then exec "$runtime" "$mode" "$image" "$@"; fi
done
run_local "$image" "$(field "$line" 4)" "$mode" "$@"
