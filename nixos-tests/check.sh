#!/usr/bin/env bash
# What CI can check of the Nix side of vmcreds on a machine without a Nix store
# or nixpkgs (Debian's nix-bin is enough). The NixOS VM tests themselves run
# with `nix flake check` on a Nix machine, not here.
#
#   1. Every .nix file in the repository parses (`nix-instantiate --parse`,
#      which also rejects undefined variables).
#   2. Every NixOS option that README.md names between
#      `<!-- nixos-options:begin -->` and `<!-- nixos-options:end -->` is
#      declared in nixos-tests/modules/. Options are named there either in
#      backticks (`services.vmcreds.vms.<name>.report.enable`) or by being set
#      in a ```nix block (each block must be a whole Nix expression: a NixOS
#      module or an attribute set); the blocks must parse too.
#   3. The modules evaluate: tests/module-cases.nix (bad configurations
#      refused by assertions, good ones giving the expected units and
#      arguments) against eval/lib.nix, a small stand-in for nixpkgs' module
#      system; `nix flake check` runs the same cases with the real one.
#   4. `check.sh --self-test` proves steps 2 and 3 can fail: a misspelled
#      option in a copy of the README section, a misspelt flag in a copy of
#      the host module, each must fail.
#
# Usage: bash nixos-tests/check.sh [--self-test] [README]
# Exit: 0 all good; 1 a check failed; 2 nix-instantiate missing or bad usage.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
modules=$here/modules

if ! command -v nix-instantiate >/dev/null 2>&1; then
  echo "check.sh: nix-instantiate not found; install Debian's nix-bin (apt-get install nix-bin)" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- 1. every .nix file parses ------------------------------------------------
parse_all() {
  local count=0 bad=0 file out
  while IFS= read -r -d '' file; do
    count=$((count + 1))
    if ! out=$(nix-instantiate --parse "$file" 2>&1 >/dev/null); then
      echo "FAIL parse ${file#"$root"/}"
      printf '%s\n' "$out" | sed 's/^/    /'
      bad=$((bad + 1))
    fi
  done < <(find "$root" \( -name .git -o -name target -o -name result -o -name node_modules \) -prune \
    -o -type f -name '*.nix' -print0 | sort -z)
  if [ "$count" -eq 0 ]; then
    echo "FAIL parse: no .nix file found under $root"
    return 1
  fi
  echo "parse: $((count - bad)) of $count .nix files parse"
  [ "$bad" -eq 0 ]
}

# --- 2. README options exist ---------------------------------------------------

# The README's NixOS section, between the markers.
readme_region() {
  awk '/<!-- nixos-options:begin -->/ { inside = 1; found = 1; next }
       /<!-- nixos-options:end -->/ { inside = 0; next }
       inside { print }
       END { if (!found) exit 3 }' "$1"
}

# Nix that lists the services.vmcreds.* attribute paths a module sets. Module
# arguments (pkgs, config, lib, …) are stubs that throw when used, and
# builtins.tryEval turns such a value into a leaf: only attribute names are read.
cat >"$work/paths.nix" <<'EOF'
{ file }:
let
  expr = import file;
  stub = name: throw "check.sh: module argument ${name} is a stub";
  module =
    if builtins.isFunction expr then
      expr (builtins.mapAttrs (name: _: stub name) (builtins.functionArgs expr))
    else
      expr;
  isSet =
    v:
    let
      r = builtins.tryEval (builtins.isAttrs v && !(v ? _type) && v != { });
    in
    r.success && r.value;
  walk =
    prefix: v:
    if isSet v then
      builtins.concatMap (n: walk "${prefix}.${n}" v.${n}) (builtins.attrNames v)
    else
      [ prefix ];
  has = path: v: isSet v && v ? ${path};
in
if has "services" module && has "vmcreds" module.services then
  walk "services.vmcreds" module.services.vmcreds
else
  [ ]
EOF

# Option paths named in the region: backticked ones, and those set in nix blocks.
option_paths() {
  local region=$1 n=0 block
  # shellcheck disable=SC2016 # the backticks are literal
  grep -oE '`services\.vmcreds(\.[A-Za-z0-9_<>@*-]+)+`' "$region" | tr -d '`' || true
  awk -v dir="$work" '
    /^[[:space:]]*```nix[[:space:]]*$/ { n++; out = sprintf("%s/block-%02d.nix", dir, n); inside = 1; next }
    /^[[:space:]]*```[[:space:]]*$/ { inside = 0; next }
    inside { print > out }' "$region"
  for block in "$work"/block-*.nix; do
    [ -e "$block" ] || continue
    n=$((n + 1))
    if ! nix-instantiate --parse "$block" >/dev/null 2>"$work/err"; then
      echo "PARSE-ERROR ${block##*/}: $(head -n 3 "$work/err" | tr '\n' ' ')"
      continue
    fi
    nix-instantiate --eval --strict --json "$work/paths.nix" --arg file "$block" 2>"$work/err" |
      tr -d '[]"' | tr ',' '\n' || echo "EVAL-ERROR ${block##*/}: $(head -n 3 "$work/err" | tr '\n' ' ')"
    echo
  done
}

# Is NAME declared as an option (leaf) or an option group in FILE?
is_leaf() { grep -qE "^[[:space:]]*$1[[:space:]]*=[[:space:]]*(lib\.)?(mkOption|mkEnableOption|mkPackageOption)([[:space:]]|$)" "$2"; }
is_group() { grep -qE "^[[:space:]]*$1[[:space:]]*=[[:space:]]*\{[[:space:]]*$" "$2"; }

# Check one option path against the module that declares its subtree. Below a
# leaf option (credentials, settings, expect, …) come user keys: not checked.
check_path() {
  local path=$1 file rest comp
  case "$path" in
    services.vmcreds.package)
      grep -qE '^[[:space:]]*options\.services\.vmcreds\.package[[:space:]]*=' "$modules/common.nix"
      return
      ;;
    services.vmcreds.vms | services.vmcreds.vms.*)
      grep -qE '^[[:space:]]*options\.services\.vmcreds\.vms[[:space:]]*=' "$modules/host.nix" || return 1
      rest=${path#services.vmcreds.vms}
      rest=${rest#.}
      # The next component is the VM's name (<name>, or the example's).
      [[ $rest == *.* ]] || return 0
      rest=${rest#*.}
      file=$modules/host.nix
      ;;
    services.vmcreds.check | services.vmcreds.check.*)
      grep -qE '^[[:space:]]*options\.services\.vmcreds\.check[[:space:]]*=' "$modules/guest.nix" || return 1
      rest=${path#services.vmcreds.check}
      rest=${rest#.}
      [ -n "$rest" ] || return 0
      file=$modules/guest.nix
      ;;
    *)
      return 1
      ;;
  esac
  local IFS=.
  for comp in $rest; do
    [[ $comp =~ ^[A-Za-z_][A-Za-z0-9_-]*$ ]] || return 1
    if is_leaf "$comp" "$file"; then
      return 0
    elif ! is_group "$comp" "$file"; then
      return 1
    fi
  done
  return 0
}

check_readme() {
  local readme=$1 region=$work/region.md status=0 paths count bad path
  if ! readme_region "$readme" >"$region"; then
    return 2
  fi
  rm -f "$work"/block-*.nix
  paths=$(option_paths "$region" | sed '/^$/d' | sort -u)
  if grep -qE '^(PARSE|EVAL)-ERROR' <<<"$paths"; then
    grep -E '^(PARSE|EVAL)-ERROR' <<<"$paths" | sed 's/^/FAIL options: README nix block: /'
    status=1
    paths=$(grep -vE '^(PARSE|EVAL)-ERROR' <<<"$paths" || true)
  fi
  if [ -z "$paths" ]; then
    echo "FAIL options: no services.vmcreds option named between the markers in $readme"
    return 1
  fi
  count=0
  bad=0
  while IFS= read -r path; do
    count=$((count + 1))
    if ! check_path "$path"; then
      echo "FAIL options: README names $path, which nixos-tests/modules/ does not declare"
      bad=$((bad + 1))
    fi
  done <<<"$paths"
  echo "options: $((count - bad)) of $count option paths named in the README are declared"
  [ "$bad" -eq 0 ] && [ "$status" -eq 0 ]
}

# --- 3. the modules evaluate: stand-in, golden outputs, real lib ------------
# eval/golden.nix evaluates every configuration of tests/module-configs.nix and
# every nix block of the README section with a given lib (the stand-in
# eval/lib.nix, or nixpkgs' real lib) and eval/nixos-options.nix, and renders
# the units (eval/render.nix); tests/module-cases.nix's booleans run on the
# same evaluations. golden/ holds those outputs as recorded with the real lib.
golden=$here/golden
storeRe='/nix/store/[0-9a-z]{32}'
# Cases only the real lib with microvm.nix can evaluate.
notMicrovm='[^m]|m[^i]|mi[^c]'

# The files the golden outputs depend on (the README's nix blocks too).
source_files() {
  (cd "$here" && ls modules/*.nix tests/module-configs.nix tests/module-cases.nix \
    eval/nixos-options.nix eval/nixos-options-microvm.nix eval/render.nix eval/golden.nix \
    eval/microvm.nix eval/pkgs.nix eval/utils.nix | LC_ALL=C sort)
}
sources_hash() {
  local f
  {
    for f in $(source_files); do
      printf '%s\0' "$f"
      cat "$here/$f"
      printf '\0'
    done
    for f in "$work"/block-*.nix; do
      [ -e "$f" ] || continue
      printf 'README %s\0' "${f##*/}"
      cat "$f"
      printf '\0'
    done
  } | sha256sum | cut -d' ' -f1
}

# A Nix list of the README's nix blocks (extracted by check_readme).
readme_blocks() {
  local f list="["
  for f in "$work"/block-*.nix; do
    [ -e "$f" ] && list="$list $f"
  done
  echo "$list ]"
}

# The nixpkgs lib to hold the modules to: VMCREDS_NIXPKGS_LIB (a nixpkgs
# checkout or the nixpkgs.lib mirror: PATH/lib), else <nixpkgs/lib>.
find_real_lib() {
  local p=${VMCREDS_NIXPKGS_LIB:-}
  if [ -n "$p" ]; then
    if [ -f "$p/lib/default.nix" ]; then
      (cd "$p/lib" && pwd)
    elif [ -f "$p/default.nix" ] && [ -f "$p/modules.nix" ]; then
      (cd "$p" && pwd)
    else
      echo "FAIL real-lib: VMCREDS_NIXPKGS_LIB=$p holds neither lib/default.nix nor default.nix and modules.nix" >&2
      return 1
    fi
  elif p=$(nix-instantiate --find-file nixpkgs 2>/dev/null) && [ -f "$p/lib/default.nix" ]; then
    echo "$p/lib"
  fi
}

# VMCREDS_REQUIRE (comma-separated, or "all"): nixpkgs-lib, microvm-nix,
# systemd-analyze, fw-cfg-host. A required part that is missing fails.
required() { [[ ",${VMCREDS_REQUIRE:-}," == *",$1,"* || ",${VMCREDS_REQUIRE:-}," == *",all,"* ]]; }

# Evaluate golden.nix with LIBEXPR into DIR, one file per output (result.json
# pretty-printed). EXTRA: more Nix arguments.
render_outputs() {
  local dir=$1 libexpr=$2 extra=${3:-} key value
  rm -rf "$dir"
  mkdir -p "$dir"
  nix-instantiate --eval --strict --json -E \
    "(import $here/eval/golden.nix { lib = $libexpr; readmeBlocks = $(readme_blocks); $extra }).files" \
    >"$dir.json" 2>"$dir.err" || return 1
  jq -r 'to_entries[] | (.key | @base64) + " " + (.value | @base64)' "$dir.json" |
    while read -r key value; do
      key=$(base64 -d <<<"$key")
      mkdir -p "$dir/$(dirname "$key")"
      if [[ $key == */result.json ]]; then
        base64 -d <<<"$value" | jq . >"$dir/$key"
      else
        base64 -d <<<"$value" >"$dir/$key"
      fi
    done
}

cases_with() {
  nix-instantiate --eval --strict --json -E \
    "let g = import $here/eval/golden.nix { lib = $1; readmeBlocks = $(readme_blocks); }; in { inherit (g) casesSummary casesOk; }" 2>&1
}

# Compare DIR with golden/, for the cases whose name matches FILTER (an ERE).
compare_golden() {
  local dir=$1 what=$2 filter=$3 out f bad=0
  out=$(diff <(cd "$golden" && find . -type f ! -name SOURCES | grep -E "^\./($filter)" | LC_ALL=C sort) \
    <(cd "$dir" && find . -type f | grep -E "^\./($filter)" | LC_ALL=C sort) 2>&1) || {
    echo "FAIL golden: $what gives other files than the golden outputs:"
    printf '%s\n' "$out" | head -n 20 | sed 's/^/    /'
    return 1
  }
  while IFS= read -r f; do
    if ! cmp -s "$golden/$f" "$dir/$f"; then
      echo "FAIL golden: $what differs from the golden outputs in ${f#./}:"
      diff -u "$golden/$f" "$dir/$f" | head -n 20 | sed 's/^/    /'
      bad=1
    fi
  done < <(cd "$dir" && find . -type f | grep -E "^\./($filter)" | LC_ALL=C sort)
  return "$bad"
}

golden_field() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$golden/SOURCES" 2>/dev/null; }

eval_modules() {
  local out rc=0 hash recorded
  # The booleans of module-cases.nix with the stand-in.
  if ! out=$(cases_with "import $here/eval/lib.nix"); then
    echo "FAIL eval: the modules do not evaluate with the stand-in module system:"
    printf '%s\n' "$out" | head -n 15 | sed 's/^/    /'
    return 1
  fi
  echo "eval: module cases (stand-in module system): $(jq -r .casesSummary <<<"$out")"
  [ "$(jq -r .casesOk <<<"$out")" = true ] || rc=1
  # The golden outputs must be fresh for these sources...
  hash=$(sources_hash)
  recorded=$(golden_field sources-sha256)
  if [ "$record" -eq 0 ] && [ "$hash" != "$recorded" ]; then
    echo "FAIL golden: the module sources (sha256 $hash) are not those the golden outputs were recorded from (${recorded:-none}): re-record the golden outputs with the real nixpkgs lib (VMCREDS_NIXPKGS_LIB=PATH VMCREDS_MICROVM_NIX=PATH bash nixos-tests/check.sh --record)"
    rc=1
  fi
  # ...and the stand-in must give exactly what the real lib gave.
  if ! render_outputs "$work/stand-in" "import $here/eval/lib.nix"; then
    echo "FAIL eval: eval/golden.nix does not evaluate with the stand-in:"
    head -n 15 "$work/stand-in.err" | sed 's/^/    /'
    return 1
  fi
  [ "$record" -eq 1 ] && return "$rc"
  if compare_golden "$work/stand-in" "the stand-in (eval/lib.nix)" "$notMicrovm"; then
    echo "golden: the stand-in gives the outputs recorded with nixpkgs lib $(golden_field nixpkgs-lib | cut -d' ' -f1): $(cd "$work/stand-in" && find . -name result.json | wc -l) cases, $(cd "$work/stand-in" && find . -path '*/units/*' -type f | wc -l) unit files"
  else
    rc=1
  fi
  return "$rc"
}

# With nixpkgs' real lib: the cases and the golden outputs (or --record them).
eval_real() {
  local lib out rc=0 microvm=${VMCREDS_MICROVM_NIX:-} extra="" version
  lib=$(find_real_lib) || return 1
  if [ -z "$lib" ]; then
    if required nixpkgs-lib || [ "$record" -eq 1 ]; then
      echo "FAIL real-lib: nixpkgs' lib is required (VMCREDS_REQUIRE or --record), but neither VMCREDS_NIXPKGS_LIB nor <nixpkgs> is given"
      return 1
    fi
    echo "real-lib: NOT RUN (no nixpkgs lib: set VMCREDS_NIXPKGS_LIB=PATH to a nixpkgs or nixpkgs.lib checkout); the stand-in is held to the golden outputs instead"
    return 0
  fi
  if [ -n "$microvm" ]; then
    [ -f "$microvm/nixos-modules/host/default.nix" ] || {
      echo "FAIL microvm: VMCREDS_MICROVM_NIX=$microvm has no nixos-modules/host/default.nix"
      return 1
    }
    extra="microvm = $(cd "$microvm" && pwd);"
  elif required microvm-nix || [ "$record" -eq 1 ]; then
    echo "FAIL microvm: upstream microvm.nix is required (VMCREDS_REQUIRE or --record): set VMCREDS_MICROVM_NIX=PATH"
    return 1
  else
    echo "microvm: NOT RUN (no microvm.nix: set VMCREDS_MICROVM_NIX=PATH); the golden microvm-* units are still verified below"
  fi
  version=$(nix-instantiate --eval -E "(import $lib).version" | tr -d '"')
  if ! out=$(cases_with "import $lib"); then
    echo "FAIL real-lib: the modules do not evaluate with nixpkgs' lib ($lib):"
    printf '%s\n' "$out" | head -n 15 | sed 's/^/    /'
    return 1
  fi
  echo "real-lib: module cases (nixpkgs lib $version): $(jq -r .casesSummary <<<"$out")"
  [ "$(jq -r .casesOk <<<"$out")" = true ] || rc=1
  if ! render_outputs "$work/real" "import $lib" "$extra"; then
    echo "FAIL real-lib: eval/golden.nix does not evaluate with nixpkgs' lib:"
    head -n 15 "$work/real.err" | sed 's/^/    /'
    return 1
  fi
  if [ -n "$microvm" ] && grep -l '"checks"' "$work/real"/microvm-*/result.json >/dev/null 2>&1 &&
    jq -e '.checks | to_entries | map(select(.value != true)) | length > 0' "$work/real"/microvm-*/result.json >/dev/null 2>&1; then
    echo "FAIL microvm: a check of the microvm@ drop-in failed:"
    jq -c '{checks}' "$work/real"/microvm-*/result.json 2>/dev/null | sed 's/^/    /'
    rc=1
  fi
  if [ "$record" -eq 1 ]; then
    [ "$rc" -eq 0 ] || { echo "FAIL record: a check fails; not recording"; return 1; }
    rm -rf "$golden"
    cp -r "$work/real" "$golden"
    {
      echo "# Outputs of nixos-tests/eval/golden.nix recorded with nixpkgs' real lib by"
      echo "# \`bash nixos-tests/check.sh --record\`. check.sh holds the stand-in to them. Do not edit."
      echo "sources-sha256 $(sources_hash)"
      echo "nixpkgs-lib ${VMCREDS_NIXPKGS_LIB_REV:-$(git -C "$lib" rev-parse HEAD 2>/dev/null || echo unknown)} $version"
      echo "microvm-nix ${VMCREDS_MICROVM_NIX_REV:-$(git -C "$microvm" rev-parse HEAD 2>/dev/null || echo unknown)}"
      echo "recorded $(date -u +%Y-%m-%d)"
    } >"$golden/SOURCES"
    echo "record: wrote $(find "$golden" -type f | wc -l) files to ${golden#"$root"/}"
    return 0
  fi
  local filter=$notMicrovm
  [ -n "$microvm" ] && filter='.'
  if compare_golden "$work/real" "nixpkgs' real lib" "$filter"; then
    echo "real-lib: nixpkgs' lib gives the golden outputs${microvm:+, microvm.nix host module included}"
  else
    rc=1
  fi
  return "$rc"
}

# --- 4. the rendered units, checked by systemd --------------------------------
# Every case's golden units go into a root directory beside Debian's own units
# (for sysinit.target and friends), with an executable stub at every path an
# Exec*= line names, and `systemd-analyze verify --root` must load them without
# a single message. LoadCredential= is read back too: systemd-analyze names a
# credential it finds invalid, so probes that make each ID and path invalid on
# purpose (a trailing '/', a leading 'x') show what systemd read, which must be
# the credential names (hostArgs' `--load NAME:ID`) and the paths (result.json).
verify_units() {
  local caseDir cname sysroot units out bad=0 count=0 f u inst p
  if ! command -v systemd-analyze >/dev/null; then
    if required systemd-analyze; then
      echo "FAIL verify: systemd-analyze not found (apt-get install systemd)"
      return 1
    fi
    echo "verify: NOT RUN (no systemd-analyze: apt-get install systemd)"
    return 0
  fi
  for caseDir in "$golden"/*/; do
    cname=$(basename "$caseDir")
    [ -d "$caseDir/units" ] || continue
    sysroot=$work/root-$cname
    rm -rf "$sysroot"
    mkdir -p "$sysroot/etc/systemd/system" "$sysroot/usr/lib/systemd" "$sysroot/bin"
    cp -a /lib/systemd/system "$sysroot/usr/lib/systemd/"
    (cd "$caseDir/units" && find . -type f ! -path './tmpfiles.d/*' | while read -r f; do
      mkdir -p "$sysroot/etc/systemd/system/$(dirname "$f")"
      cp "$f" "$sysroot/etc/systemd/system/$f"
    done)
    # microvm.nix's templates for the drop-ins of cases evaluated without it:
    # the one its host module rendered (golden microvm-fw-cfg).
    if compgen -G "$sysroot/etc/systemd/system/microvm@?*.service.d" >/dev/null &&
      [ ! -e "$sysroot/etc/systemd/system/microvm@.service" ]; then
      cp "$golden"/microvm-fw-cfg/units/microvm*@.service "$sysroot/etc/systemd/system/"
    fi
    # The units, and the template instances the drop-ins name.
    units=$(cd "$sysroot/etc/systemd/system" && {
      find . -maxdepth 1 -type f \( -name '*.service' -o -name '*.socket' -o -name '*.target' \) ! -name '*@.*' -printf '%f\n'
      find . -maxdepth 1 -type d -name '*@?*.service.d' -printf '%f\n' | sed 's/\.d$//'
    } | LC_ALL=C sort -u)
    # A stub for every executable an Exec*= line names, per instance (%i).
    grep -rhoE '^Exec[A-Za-z]*=[-+!@:]*("[^"]+"|[^ ]+)' "$sysroot/etc/systemd/system" |
      sed -E 's/^[^=]*=[-+!@:]*//; s/^"//; s/"$//' | LC_ALL=C sort -u |
      while read -r f; do
        for u in $units; do
          inst=${u#*@}
          inst=${inst%.service}
          p=${f//%i/$inst}
          case "$p" in /*)
            mkdir -p "$sysroot$(dirname "$p")"
            printf '#!/bin/sh\n' >"$sysroot$p"
            chmod +x "$sysroot$p"
            ;;
          esac
        done
      done
    # shellcheck disable=SC2086 # one word per unit
    out=$(cd "$sysroot" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --root="$sysroot" --man=no --generators=no $units 2>&1) || true
    count=$((count + $(wc -w <<<"$units")))
    if [ -n "$out" ]; then
      echo "FAIL verify: systemd-analyze verify of $cname's units ($(tr '\n' ' ' <<<"$units")):"
      printf '%s\n' "$out" | head -n 10 | sed 's/^/    /'
      bad=1
    fi
    verify_credentials "$cname" "$sysroot" || bad=1
  done
  [ "$bad" -eq 0 ] && echo "verify: $(systemd-analyze --version | head -n 1 | cut -d' ' -f1-2) verify loads all $count golden units without a message; LoadCredential= reads back as the modules meant"
  return "$bad"
}

verify_credentials() {
  local cname=$1 sysroot=$2 probe lines want got
  probe=$sysroot/etc/systemd/system/vmcreds-probe.service
  lines=$(grep -rh '^LoadCredential=' "$sysroot/etc/systemd/system" | sed 's/^LoadCredential=//') || true
  [ -n "$lines" ] || return 0
  {
    printf '[Service]\nExecStart=/bin/true\n'
    # The ID ends at the first ':' that no backslash escapes.
    perl -ne 'chomp; if (/^((?:[^\\:]|\\.)*):(.*)$/) { print "LoadCredential=$1/:/x\nLoadCredential=p:x$2\n" } else { print "LoadCredential=$_/:/x\n" }' <<<"$lines"
  } >"$probe"
  printf '#!/bin/sh\n' >"$sysroot/bin/true"
  chmod +x "$sysroot/bin/true"
  got=$(cd "$sysroot" && systemd-analyze verify --root="$sysroot" --man=no --generators=no vmcreds-probe.service 2>&1 |
    sed -nE 's/.*Credential name "(.*)\/" not valid.*/ID \1/p; s/.*Credential source "x(.*)" not valid.*/PATH \1/p' | LC_ALL=C sort -u)
  rm -f "$probe"
  want=$({
    jq -r '.hostArgs[] | . as $a | range(0; length) | select($a[.] == "--load") | "ID " + ($a[. + 1] | sub("^[^:]*:"; ""))' "$golden/$cname/result.json"
    jq -r '.credentials[] | .[] | "PATH " + .' "$golden/$cname/result.json"
  } | LC_ALL=C sort -u)
  if [ "$got" != "$want" ]; then
    echo "FAIL verify: $cname: systemd reads LoadCredential= otherwise than the modules meant (< meant, > read):"
    diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | grep '^[<>]' | head -n 10 | sed 's/^/    /'
    return 1
  fi
}

# --- 5. the fw-cfg script, spliced as microvm.nix's runner splices it ---------
# Each golden extraArgsScript runs inside the runner's own lines
# (`set -eou pipefail`, `runtime_args=$(SCRIPT)`, `exec CMD ${runtime_args:-}`)
# under real bash, in a working directory full of file names that a glob of
# its output could match, with, as its vmcreds-host:
# - a printer of lines that are not safe to splice, each of which must stop the
#   start, and of one safe line, which must arrive as exactly its two words;
# - the workspace's real vmcreds-host (VMCREDS_HOST, else target/debug or
#   target/release) once it has --fw-cfg, run with the golden arguments (paths
#   moved into a temporary directory): two words again, and 0400 files.
splice_test() {
  local script dir host args rc=0 n=0 line real case_dir
  local good='--fw-cfg-config items=[name=opt/io.systemd.credentials/A_KEY,file=/run/vmcreds-fw-cfg/vm3/vmcreds.Ab12Cd34Ef56/A_KEY:name=opt/io.systemd.credentials/B%1,file=/run/vmcreds-fw-cfg/vm3/vmcreds.Ab12Cd34Ef56/B%1]'
  dir=$work/splice
  real=${VMCREDS_HOST:-}
  if [ -z "$real" ]; then
    for real in "$root/target/debug/vmcreds-host" "$root/target/release/vmcreds-host" ""; do
      [ -z "$real" ] || [ -x "$real" ] && break
    done
  fi
  if [ -n "$real" ] && ! "$real" cloud-hypervisor --help 2>/dev/null | grep -q -- '--fw-cfg'; then
    real=""
  fi
  for script in "$golden"/*/scripts/vmcreds-fw-cfg-*; do
    [ -e "$script" ] || continue
    n=$((n + 1))
    rm -rf "$dir"
    mkdir -p "$dir/bin" "$dir/cwd" "$dir/creds" "$dir/run"
    (cd "$dir/cwd" && for f in 'items=n' 'items=a' 'items==' 'items=o' 'items=]' '--fw-cfg-config' 'x y' '*' '?' '[a]' 'a' 'A' \
      'A_KEY]' ']' '[' '-' 'items' "$(printf 'new\nline')"; do : >"./$f"; done &&
      mkdir -p 'items=[name=opt/io.systemd.credentials')
    printf '%s\n' '#!/usr/bin/env bash' 'printf "%s\0" "$@"' >"$dir/bin/argv"
    chmod +x "$dir/bin/argv"
    host=$(grep -oE "$storeRe-vmcreds/bin/vmcreds-host" "$script" | head -n 1)
    if [ -z "$host" ]; then
      echo "FAIL splice: ${script#"$golden"/} runs no vmcreds-host"
      rc=1
      continue
    fi
    while IFS= read -r line; do
      printf '#!/bin/sh\nprintf "%%s\\n" %s\n' "$(printf '%q' "$line")" >"$dir/bin/printer"
      chmod +x "$dir/bin/printer"
      sed "s|$host|$dir/bin/printer|" "$script" >"$dir/fake.sh"
      if args=$(cd "$dir/cwd" && bash -c "set -eou pipefail; runtime_args=\$(bash $dir/fake.sh 2>/dev/null); exec $dir/bin/argv \${runtime_args:-}" | tr '\0' '\n') && [ -n "$args" ]; then
        if [ "$line" != "$good" ]; then
          echo "FAIL splice: ${script#"$golden"/} passed an unsafe line on to the runner: $line"
          rc=1
        elif [ "$args" != "$(tr ' ' '\n' <<<"$good")" ]; then
          echo "FAIL splice: ${script#"$golden"/}: a safe line arrived changed: $(tr '\n' ' ' <<<"$args")"
          rc=1
        fi
      elif [ "$line" = "$good" ]; then
        echo "FAIL splice: ${script#"$golden"/} refused a safe line"
        rc=1
      fi
    done <<LINES
$good
--fw-cfg-config items=[name=opt/io.systemd.credentials/A,file=/run/x/vmcreds.1/A *]
--fw-cfg-config items=[name=opt/io.systemd.credentials/A,file=/run/x/vmcreds.1/A?]
--fw-cfg-config items=[name=opt/io.systemd.credentials/A,file=/run/x/vmcreds.1/[a]]
--fw-cfg-config items=[name=n]
--fw-cfg-config items=[name=opt/io.systemd.credentials/A,file=/run/x/vmcreds.1/A]	--extra
--fw-cfg-config  items=[name=opt/io.systemd.credentials/A,file=/run/x/vmcreds.1/A]
--fw-cfg-config items=[name=opt/io.systemd.credentials/A,file=/run/x/vmcreds.1/A\]
--fw-cfg-config items=[name=opt/io.systemd.credentials/A,file="/run/x/vmcreds.1/A"]
--platform oem_strings=[io.systemd.credential:A=b]

LINES
    if [ -n "$real" ]; then
      # The golden arguments, with the case's /run paths moved here and no
      # cloud-hypervisor binary to ask.
      cat >"$dir/bin/host" <<HOST
#!/usr/bin/env bash
args=()
while [ \$# -gt 0 ]; do
  case \$1 in
    --runtime-dir) args+=(--runtime-dir "$dir/run"); shift ;;
    --manifest-out) args+=(--manifest-out "$dir/manifest.json"); shift ;;
    --cloud-hypervisor) args+=(--cloud-hypervisor-version v53.0); shift ;;
    --load) printf 'canary-%s' "\$RANDOM" >"$dir/creds/\${2#*:}"; args+=(--load "\$2"); shift ;;
    *) args+=("\$1") ;;
  esac
  shift
done
exec "$real" "\${args[@]}"
HOST
      chmod +x "$dir/bin/host"
      sed "s|$host|$dir/bin/host|" "$script" >"$dir/real.sh"
      # A case the module refuses by assertion never deploys, so the real
      # host is not asked, except for the names fw_cfg cannot carry: those
      # vmcreds-host must refuse as well (defence in depth), stopping the start.
      case_dir=${script%/scripts/*}
      if [ "$(jq '.assertions | length' "$case_dir/result.json")" -gt 0 ]; then
        [ "${case_dir##*/}" = fw-cfg-bad-name ] || continue
        if (cd "$dir/cwd" && CREDENTIALS_DIRECTORY=$dir/creds bash -c "set -eou pipefail; runtime_args=\$(bash $dir/real.sh); exec $dir/bin/argv \${runtime_args:-}" >/dev/null 2>&1); then
          echo "FAIL splice: ${script#"$golden"/} is refused by the module's assertions, but the real vmcreds-host ($real) let it start"
          rc=1
        elif [ -n "$(find "$dir/run" -mindepth 1)" ]; then
          echo "FAIL splice: ${script#"$golden"/}: the real vmcreds-host refused, but left files in the runtime directory"
          rc=1
        fi
      elif args=$(cd "$dir/cwd" && CREDENTIALS_DIRECTORY=$dir/creds bash -c "set -eou pipefail; runtime_args=\$(bash $dir/real.sh); exec $dir/bin/argv \${runtime_args:-}" | tr '\0' '\n'); then
        if [ "$(wc -l <<<"$args")" -ne 2 ] || [ "$(head -n 1 <<<"$args")" != --fw-cfg-config ] ||
          [[ $(tail -n 1 <<<"$args") != "items=["*"]" ]] || [ -n "$(find "$dir/run" -type f ! -perm 0400)" ]; then
          echo "FAIL splice: ${script#"$golden"/} with the real vmcreds-host ($real): not one --fw-cfg-config pair, or files not 0400"
          rc=1
        fi
      else
        echo "FAIL splice: ${script#"$golden"/} with the real vmcreds-host ($real) stopped the start"
        rc=1
      fi
    fi
  done
  if [ "$n" -eq 0 ]; then
    echo "FAIL splice: no golden fw-cfg script (golden/*/scripts/vmcreds-fw-cfg-*)"
    return 1
  fi
  if [ -z "$real" ]; then
    if required fw-cfg-host; then
      echo "FAIL splice: VMCREDS_REQUIRE has fw-cfg-host, but there is no vmcreds-host with --fw-cfg (VMCREDS_HOST, target/debug)"
      rc=1
    else
      echo "splice: with the real vmcreds-host: NOT RUN (none with --fw-cfg: set VMCREDS_HOST=PATH or build target/debug)"
    fi
  fi
  [ "$rc" -eq 0 ] && echo "splice: $n fw-cfg scripts under $(bash --version | head -n 1 | sed 's/ (.*//'): 10 unsafe lines stop the start, a safe one arrives as its two words, beside $(ls -A "$dir/cwd" | wc -l) adversarial file names${real:+; the real vmcreds-host too}"
  return "$rc"
}

# --- 6. self-test ---------------------------------------------------------------

# Used by the self-test when the README has no NixOS section yet.
sample_section() {
  cat <<'SAMPLE'
<!-- nixos-options:begin -->
`services.vmcreds.vms.<name>.report.enable`, `services.vmcreds.check.strict`

```nix
{ pkgs, ... }:
{
  services.vmcreds.vms.app = {
    hypervisor = "qemu";
    credentials = {
      API_KEY = "/run/secrets/host-api-key";
    };
    qemu.command = [ "${pkgs.qemu_kvm}/bin/qemu-system-x86_64" "-machine" "q35" ];
  };
}
```
<!-- nixos-options:end -->
SAMPLE
}

# Run a copy of nixos-tests/ (and the README) after MUTATION (a shell command
# run in the copy's root); it must fail with a line matching EXPECT.
mutant() {
  local what=$1 mutation=$2 expect=$3 copy=$work/mutant out
  rm -rf "$copy"
  mkdir -p "$copy"
  cp -r "$here" "$copy/nixos-tests"
  cp "$readme" "$copy/README.md"
  (cd "$copy" && eval "$mutation")
  if out=$(VMCREDS_REQUIRE= bash "$copy/nixos-tests/check.sh" "$copy/README.md" 2>&1); then
    echo "FAIL self-test: $what was not caught"
    return 1
  fi
  if ! grep -qE -- "$expect" <<<"$out"; then
    echo "FAIL self-test: $what failed, but not as expected ($expect):"
    grep -E '^FAIL' <<<"$out" | head -n 5 | sed 's/^/    /'
    return 1
  fi
  echo "self-test caught $what: $(grep -E -- "$expect" <<<"$out" | head -n 1 | cut -c1-160)"
}

self_test() {
  local readme=$1 copy=$work/misspelled.md out variant
  if ! readme_region "$readme" >/dev/null; then
    sample_section >"$work/sample.md"
    readme=$work/sample.md
    echo "self-test: the README has no NixOS section; using a built-in sample"
  fi
  # A correct README section must pass...
  check_readme "$readme" >/dev/null || {
    echo "FAIL self-test: the README itself does not pass"
    return 1
  }
  # ...and the same section with one option misspelled must fail, both in
  # backticks and in a nix block.
  for variant in backtick block; do
    if [ "$variant" = backtick ]; then
      sed 's/report\.enable/report.enabel/g' "$readme" >"$copy"
    else
      sed 's/^\([[:space:]]*\)credentials = {/\1credentails = {/' "$readme" >"$copy"
    fi
    if cmp -s "$readme" "$copy"; then
      echo "FAIL self-test: nothing to misspell for the $variant variant (report.enable / credentials = {)"
      return 1
    fi
    if out=$(check_readme "$copy"); then
      echo "FAIL self-test: a misspelled option ($variant) was not caught"
      return 1
    fi
    grep -E 'enabel|credentails' <<<"$out" | head -n 1 | sed 's/^/self-test caught: /'
  done
  local rc=0
  # Each later step must be able to fail (in a copy; the copy's own steps run).
  mutant "a misspelt vmcreds-host flag" \
    "sed -i 's/\"--manifest-out\"/\"--manifest-outt\"/' nixos-tests/modules/host.nix" \
    'module cases.*failed: .*good-config-host-args' || rc=1
  mutant "a module change not recorded with the real lib (stale golden outputs)" \
    "printf '\n# a comment\n' >>nixos-tests/modules/guest.nix" \
    're-record the golden outputs with the real nixpkgs lib' || rc=1
  mutant "a stand-in that drifts from nixpkgs (escapeShellArgs joining with two spaces)" \
    "sed -i 's/escapeShellArgs = l: b.concatStringsSep \" \"/escapeShellArgs = l: b.concatStringsSep \"  \"/' nixos-tests/eval/lib.nix" \
    'FAIL golden: the stand-in \(eval/lib.nix\) differs' || rc=1
  mutant "hostArgs without defaultText (the NixOS manual's build would throw)" \
    "sed -i '/defaultText = literalExpression \"computed from the VM/d' nixos-tests/modules/host.nix" \
    'used but not defined' || rc=1
  mutant "an unescaped % in a golden LoadCredential= (KEY%n)" \
    "sed -i 's/^LoadCredential=KEY%%n:/LoadCredential=KEY%n:/' nixos-tests/golden/any-name/units/vm-a.service" \
    'systemd reads LoadCredential= otherwise' || rc=1
  mutant "a unit systemd refuses (a bad Type=)" \
    "sed -i 's/^Type=oneshot/Type=oneshoot/' nixos-tests/golden/guest/units/vmcreds-check.service" \
    'FAIL verify: systemd-analyze verify of guest' || rc=1
  mutant "an fw-cfg script that passes on what it should refuse" \
    "sed -i 's/^  exit 1$/  true/' nixos-tests/golden/fw-cfg-mode/scripts/vmcreds-fw-cfg-vm3" \
    'passed an unsafe line on to the runner' || rc=1
  # A default of the wrong type: the stand-in does not type-check defaults,
  # nixpkgs' lib does. Without the real lib the stale golden outputs catch
  # it (the module changed); with it, the real evaluation fails.
  if [ -n "$(find_real_lib 2>/dev/null)" ]; then
    mutant "a default of the wrong type (only nixpkgs' module system sees it)" \
      "sed -i 's/default = 300;/default = \"300\";/' nixos-tests/modules/host.nix" \
      'FAIL real-lib.*|is not of type' || rc=1
  else
    echo "self-test: a default of the wrong type with nixpkgs' lib: NOT RUN (no VMCREDS_NIXPKGS_LIB)"
    if required nixpkgs-lib; then rc=1; fi
  fi
  [ "$rc" -eq 0 ] && echo "self-test: every step can fail"
  return "$rc"
}

self=0
record=0
while [ $# -gt 0 ]; do
  case $1 in
    --self-test) self=1 ;;
    --record) record=1 ;;
    -*)
      echo "usage: bash nixos-tests/check.sh [--self-test] [--record] [README]" >&2
      exit 2
      ;;
    *) break ;;
  esac
  shift
done
readme=${1:-$root/README.md}
[ -f "$readme" ] || {
  echo "check.sh: $readme: no such file" >&2
  exit 2
}
if ! command -v jq >/dev/null 2>&1; then
  echo "check.sh: jq not found (apt-get install jq)" >&2
  exit 2
fi

rc=0
parse_all || rc=1
status=0
check_readme "$readme" || status=$?
if [ "$status" -eq 2 ]; then
  echo "FAIL options: $readme has no <!-- nixos-options:begin --> marker, so no option can be checked"
  rc=1
elif [ "$status" -ne 0 ]; then
  rc=1
fi
eval_modules || rc=1
eval_real || rc=1
if [ "$record" -eq 0 ]; then
  verify_units || rc=1
  splice_test || rc=1
fi
if [ "$self" -eq 1 ]; then
  self_test "$readme" || rc=1
fi
if [ "$rc" -eq 0 ]; then
  echo "nixos-tests/check.sh: ok"
fi
exit "$rc"
