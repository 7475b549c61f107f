#!/usr/bin/env bash
# Move a wheelhouse (`make wheelhouse DIR=...`) to an offline GPU host whose calls each carry at most 64 MiB.
#   bash benchmarks/gpu/wheelhouse_parts.sh pack WHEELHOUSE PARTS_DIR [SIZE]  # here: tar, cut into parts of SIZE
#                                                                           # (default 55M), PARTS_DIR/wheelhouse.sha256
#   bash benchmarks/gpu/wheelhouse_parts.sh stash PARTS_DIR   # on the host, once per call: keep the part(s) carried
#                                                             # in PARTS_DIR (the host keeps /tmp while it is held)
#   bash benchmarks/gpu/wheelhouse_parts.sh unpack DEST       # on the host: join, check, untar into DEST, check
#                                                             # every file against DEST/SHA256SUMS
# Then: make install WHEELHOUSE=DEST. Wheels are zip files already: compressing the tar gains little, so it is not.
set -euo pipefail
STASH=${STASH:-/tmp/liverl-wheelhouse-parts}
case ${1:-} in
  pack)
    src=${2:?WHEELHOUSE} parts=${3:?PARTS_DIR} size=${4:-55M}
    [[ -f $src/SHA256SUMS ]] || { echo "wheelhouse_parts.sh: $src has no SHA256SUMS: build it with make wheelhouse DIR=$src" >&2; exit 2; }
    mkdir -p "$parts"
    rm -f "$parts"/wheelhouse.tar.part-*
    tar -C "$src" -cf - . | split -b "$size" - "$parts/wheelhouse.tar.part-"
    cat "$parts"/wheelhouse.tar.part-* | sha256sum | sed 's/-$/wheelhouse.tar/' >"$parts/wheelhouse.sha256"
    ls -l "$parts"
    echo "wheelhouse_parts.sh: $(find "$parts" -name 'wheelhouse.tar.part-*' | wc -l) part(s); carry each with its call," \
      "then: bash $0 stash DIR_IT_IS_IN" ;;
  stash)
    mkdir -p "$STASH"
    cp "${2:?PARTS_DIR}"/wheelhouse.* "$STASH"/
    echo "stashed in $STASH:" "$STASH"/wheelhouse.* ;;
  unpack)
    dest=${2:?DEST}
    start=$SECONDS
    [[ -f $STASH/wheelhouse.sha256 ]] || { echo "wheelhouse_parts.sh: $STASH/wheelhouse.sha256 was not stashed" >&2; exit 2; }
    mkdir -p "$dest"
    # the joined parts are checked, then unpacked as a stream (no second copy of the wheelhouse on the host's disk)
    sum=$(cat "$STASH"/wheelhouse.tar.part-* | sha256sum | cut -d' ' -f1)
    [[ $sum == "$(cut -d' ' -f1 "$STASH/wheelhouse.sha256")" ]] ||
      { echo "wheelhouse_parts.sh: the joined parts' sha256 is not $STASH/wheelhouse.sha256's: a part is missing or damaged (stash it again)" >&2; exit 2; }
    cat "$STASH"/wheelhouse.tar.part-* | tar -C "$dest" -xf -
    (cd "$dest" && sha256sum --quiet -c SHA256SUMS)
    echo "wheelhouse_parts.sh: $dest ($(du -sh "$dest" | cut -f1)) unpacked and checked in $((SECONDS - start)) s" ;;
  *)
    echo "usage: $0 pack WHEELHOUSE PARTS_DIR [SIZE] | stash PARTS_DIR | unpack DEST" >&2
    exit 2 ;;
esac
