# The further NixOS options microvm.nix's host module
# (nixos-modules/host/default.nix) writes to, for evaluating it together with
# the vmcreds host module (eval/microvm.nix, real lib only). Only declared,
# with the types NixOS gives them; nothing here is rendered.
{ lib, ... }:

let
  inherit (lib) mkOption types;
  anyAttrs = mkOption {
    type = types.attrsOf types.unspecified;
    default = { };
  };
in
{
  options = {
    users.users = anyAttrs;
    security.pam.loginLimits = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    security.wrappers = anyAttrs;
    environment.etc = anyAttrs;
    hardware.ksm.enable = mkOption {
      type = types.bool;
      default = false;
    };
    system.activationScripts = anyAttrs;
    virtualisation.libvirtd.enable = mkOption {
      type = types.bool;
      default = false;
    };
  };
}
