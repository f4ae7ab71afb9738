# The module cases (tests/module-cases.nix) evaluated with the stand-in module
# system (eval/lib.nix): what check.sh can evaluate of the modules without
# nixpkgs. Returns { passed; failed; ok; summary; }.
let
  lib = import ./lib.nix;

  # Stand-in packages: only their store paths are used.
  fakePackage = name: {
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    inherit name;
  };
  pkgs = {
    vmcreds = fakePackage "vmcreds";
    cloud-hypervisor = fakePackage "cloud-hypervisor";
  };
  # The two functions of nixpkgs' nixos/lib/utils.nix the modules use.
  utils = rec {
    escapeSystemdExecArg =
      arg: builtins.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON (toString arg));
    escapeSystemdExecArgs = args: builtins.concatStringsSep " " (map escapeSystemdExecArg args);
    escapeSystemdPath =
      s: builtins.replaceStrings [ "/" "-" " " ] [ "-" "\\x2d" "\\x20" ] (lib.removePrefix "/" s);
  };

  evalWith =
    module: config:
    (lib.evalModules {
      modules = [
        ./nixos-options.nix
        module
        config
      ];
      inherit pkgs utils;
    }).config;

  cases = import ../tests/module-cases.nix {
    inherit lib;
    evalHost = evalWith ../modules/host.nix;
    evalGuest = evalWith ../modules/guest.nix;
    storePath = "/nix/store/00000000000000000000000000000000-not-a-secret";
  };
  passed = lib.attrNames (lib.filterAttrs (_: ok: ok) cases);
  failed = lib.attrNames (lib.filterAttrs (_: ok: !ok) cases);
in
{
  inherit passed failed;
  ok = failed == [ ];
  summary =
    "${toString (builtins.length passed)} passed, ${toString (builtins.length failed)} failed"
    + lib.optionalString (failed != [ ]) ": ${builtins.concatStringsSep ", " failed}";
}
