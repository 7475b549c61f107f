#!/usr/bin/env bash
# The pinned claude-code CLI in PREFIX (PREFIX/node_modules/.bin/claude).
#   scripts/install_claude.sh PREFIX VERSION [WHEELHOUSE]
# With npm: `npm install` (WHEELHOUSE: --offline from its two package tarballs). Without npm but with a WHEELHOUSE
# (an offline GPU host has no Node.js): the CLI is a native binary, so the two tarballs are unpacked where npm puts
# them and bin/claude.exe linked to the platform binary, which is what the package's postinstall (install.cjs) does.
set -euo pipefail
PREFIX=$1 VERSION=$2 WH=${3:-}
die() { echo "install_claude.sh: $*" >&2; exit 2; }
if command -v npm >/dev/null; then
  if [[ -n $WH ]]; then
    npm install --prefix "$PREFIX" --no-audit --no-fund --no-save --loglevel=error --offline \
      "$WH/anthropic-ai-claude-code-$VERSION.tgz" "$WH/anthropic-ai-claude-code-linux-x64-$VERSION.tgz"
  else
    npm install --prefix "$PREFIX" --no-audit --no-fund --no-save --loglevel=error "@anthropic-ai/claude-code@$VERSION"
  fi
elif [[ -n $WH ]]; then
  [[ $(uname -sm) == "Linux x86_64" ]] || die "no npm here and the wheelhouse holds the linux-x64 CLI only (got: $(uname -sm)); install Node.js >= 22"
  mods=$PREFIX/node_modules/@anthropic-ai
  for pkg in claude-code claude-code-linux-x64; do
    tgz=$WH/anthropic-ai-$pkg-$VERSION.tgz
    [[ -f $tgz ]] || die "WHEELHOUSE: no $tgz (build the wheelhouse with make wheelhouse, SCAFFOLD=1)"
    rm -rf "${mods:?}/$pkg" && mkdir -p "$mods/$pkg"
    tar -xzf "$tgz" -C "$mods/$pkg" --strip-components=1
  done
  ln -f "$mods/claude-code-linux-x64/claude" "$mods/claude-code/bin/claude.exe"
  mkdir -p "$PREFIX/node_modules/.bin"
  ln -sfn ../@anthropic-ai/claude-code/bin/claude.exe "$PREFIX/node_modules/.bin/claude"
  echo "install_claude.sh: no npm here: the CLI unpacked from the wheelhouse's tarballs"
else
  die "the claude-code CLI needs npm (Node.js >= 22), or WHEELHOUSE=DIR (its native binary, no Node.js); or SCAFFOLD=0 for a node that never runs trials"
fi
"$PREFIX/node_modules/.bin/claude" --version
