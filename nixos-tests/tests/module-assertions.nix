# Evaluation-only checks of the modules (no VM) with nixpkgs' module system:
# bad configurations are refused by an assertion with a useful message, and
# good ones produce the expected units and arguments (cases in
# module-cases.nix, which check.sh also runs against the stand-in in eval/).
# The derivation builds only if every case holds; a failing case names itself
# in the evaluation error.
{ self, pkgs }:

let
  inherit (pkgs) lib;

  evalWith =
    module: config:
    (pkgs.nixos [
      {
        imports = [ module ];
        boot.isContainer = true; # no boot loader or file systems to assert about
      }
      config
    ]).config;

  cases = import ./module-cases.nix {
    inherit lib;
    evalHost = evalWith self.nixosModules.host;
    evalGuest = evalWith self.nixosModules.guest;
    storePath = "${pkgs.writeText "not-a-secret" "x"}";
  };

  failed = lib.attrNames (lib.filterAttrs (_: ok: !ok) cases);
in
if failed == [ ] then
  pkgs.runCommand "vmcreds-module-assertions" { } ''
    echo ${lib.escapeShellArg "${toString (lib.length (lib.attrNames cases))} passed, 0 failed"}
    touch $out
  ''
else
  throw "vmcreds module checks failed: ${lib.concatStringsSep ", " failed}"
