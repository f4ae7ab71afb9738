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

# --- 3. the modules evaluate (stand-in module system) -------------------------
# eval/lib.nix is a small stand-in for nixpkgs' lib and module system (no
# nixpkgs here); eval/check.nix evaluates tests/module-cases.nix with it: the
# same cases `nix flake check` runs with the real one (module-assertions).
eval_modules() {
  local dir=$1 out summary
  if ! out=$(nix-instantiate --eval --strict -E "(import $dir/eval/check.nix).summary" 2>&1); then
    echo "FAIL eval: the modules do not evaluate with the stand-in module system:"
    printf '%s\n' "$out" | head -n 15 | sed 's/^/    /'
    return 1
  fi
  summary=$(tr -d '"' <<<"$out")
  echo "eval: module cases (stand-in module system): $summary"
  [ "$(nix-instantiate --eval --strict -E "(import $dir/eval/check.nix).ok")" = true ]
}

# --- 4. self-test ---------------------------------------------------------------

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

self_test() {
  local readme=$1 copy=$work/misspelled.md out
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
  echo "self-test: misspelled options are caught"
  # ...and a broken module (a misspelt vmcreds-host flag) must fail step 3.
  cp -r "$here" "$work/mutant"
  sed -i 's/"--manifest-out"/"--manifest-outt"/' "$work/mutant/modules/host.nix"
  if cmp -s "$here/modules/host.nix" "$work/mutant/modules/host.nix"; then
    echo "FAIL self-test: nothing to break in modules/host.nix (\"--manifest-out\")"
    return 1
  fi
  if out=$(eval_modules "$work/mutant"); then
    echo "FAIL self-test: a broken module was not caught"
    return 1
  fi
  echo "self-test caught: ${out##*$'\n'}"
  echo "self-test: a broken module is caught"
}

self=0
if [ "${1:-}" = --self-test ]; then
  self=1
  shift
fi
readme=${1:-$root/README.md}
[ -f "$readme" ] || {
  echo "check.sh: $readme: no such file" >&2
  exit 2
}

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
eval_modules "$here" || rc=1
if [ "$self" -eq 1 ]; then
  self_test "$readme" || rc=1
fi
if [ "$rc" -eq 0 ]; then
  echo "nixos-tests/check.sh: ok"
fi
exit "$rc"
