# Shared by the host and the guest module: the package that provides
# vmcreds-host and vmcreds-guest. Imported by path from both, so the module
# system loads it once when a machine imports both modules.
{ lib, pkgs, ... }:

{
  options.services.vmcreds.package = lib.mkOption {
    type = lib.types.package;
    default = pkgs.vmcreds or (pkgs.callPackage ../package.nix { });
    defaultText = lib.literalExpression "pkgs.vmcreds (the flake's overlay), else the package built from this repository";
    description = ''
      The vmcreds package, providing {command}`vmcreds-host` and
      {command}`vmcreds-guest`.
    '';
  };
}
