# Stand-ins for the NixOS options the vmcreds modules set, with the types that
# matter for them (lists concatenate, unit attributes merge), so eval/lib.nix
# can evaluate the modules without nixpkgs.
{ lib, ... }:

let
  inherit (lib) mkOption types;
  strings = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };
  attrs = mkOption {
    type = types.attrsOf types.anything;
    default = { };
  };
  unit = types.submodule {
    options = {
      description = mkOption {
        type = types.str;
        default = "";
      };
      documentation = strings;
      wantedBy = strings;
      requiredBy = strings;
      wants = strings;
      requires = strings;
      after = strings;
      before = strings;
      partOf = strings;
      listenStreams = strings;
      path = mkOption {
        type = types.listOf types.anything;
        default = [ ];
      };
      restartIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
      overrideStrategy = mkOption {
        type = types.enum [
          "asDropinIfExists"
          "asDropin"
        ];
        default = "asDropinIfExists";
      };
      unitConfig = attrs;
      serviceConfig = attrs;
      socketConfig = attrs;
    };
  };
  units = mkOption {
    type = types.attrsOf unit;
    default = { };
  };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.anything;
      default = [ ];
    };
    warnings = strings;
    systemd.services = units;
    systemd.sockets = units;
    systemd.tmpfiles.settings = attrs;
    boot.initrd.availableKernelModules = strings;
    boot.initrd.kernelModules = strings;
    services.udev.extraRules = mkOption {
      type = types.lines;
      default = "";
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
  };
}
