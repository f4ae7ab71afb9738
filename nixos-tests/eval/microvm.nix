# The vmcreds host module evaluated together with upstream microvm.nix's own
# host module (`microvm` = a microvm.nix source tree; nixpkgs' real lib only),
# for the VMs of the fw-cfg-mode and env-mode configurations. Each microvm's
# own NixOS configuration is given already evaluated (microvm.vms.<name>.evaluatedConfig,
# which microvm.nix reads instead of evaluating NixOS): what its host module
# reads of it, plus, for fw-cfg, the vmcreds microvmModule (or not: the
# `-not-imported` case, which the assertion must refuse).
#
# Beside each case's outputs, result.json's `checks` must all be true:
#   one-drop-in      microvm@<name> gets one drop-in file (overrides.conf), no
#                    whole unit that would shadow the template;
#   template-unchanged  microvm@.service renders the same as with microvm.nix's
#                    host module alone;
#   credentials-on-vmm-unit  the drop-in on the unit whose ExecStart is
#                    microvm-run (which execs cloud-hypervisor) has LoadCredential=
#                    (fw-cfg) or EnvironmentFile= (env).
{
  lib,
  pkgs,
  utils,
  configs,
  outputs,
  evalWith,
  microvm,
  host,
}:

let
  b = builtins;
  microvmHost = microvm + "/nixos-modules/host";

  guestStub =
    name: extra:
    lib.recursiveUpdate {
      microvm = {
        hypervisor = "cloud-hypervisor";
        shares = [ ];
        declaredRunner = pkgs.writeText "microvm-cloud-hypervisor-${name}" "" // {
          supportsNotifySocket = true;
          registerWithMachined = false;
        };
      };
      system.build.toplevel = pkgs.writeText "nixos-system-${name}" "";
    } extra;

  declare =
    name: withModule:
    { config, ... }:
    {
      microvm.vms.${name}.evaluatedConfig.config = guestStub name (
        if withModule then config.services.vmcreds.vms.${name}.cloudHypervisor.microvmModule else { }
      );
    };

  evalCase =
    config: name: withModule:
    evalWith [
      ./nixos-options-microvm.nix
      microvmHost
      host
      config.host
      (declare name withModule)
    ];

  # microvm.nix alone, with the same VM: the template as upstream renders it.
  alone =
    name:
    import ./render.nix {
      inherit lib;
      config =
        (evalWith [
          ./nixos-options-microvm.nix
          microvmHost
          (declare name false)
        ]).config;
    };

  withChecks =
    case: name: evaluated: key:
    let
      out = outputs case evaluated;
      units = import ./render.nix {
        inherit lib;
        inherit (evaluated) config;
      };
      dropIns = b.filter (f: lib.hasPrefix "microvm@${name}.service" f) (b.attrNames units);
      dropIn = units."microvm@${name}.service.d/overrides.conf" or "";
      template = units."microvm@.service" or "";
      checks = {
        one-drop-in = dropIns == [ "microvm@${name}.service.d/overrides.conf" ];
        template-unchanged = template != "" && template == (alone name)."microvm@.service";
        credentials-on-vmm-unit =
          lib.hasInfix "/current/bin/microvm-run" template && lib.hasInfix "\n${key}=" dropIn;
      };
      result = b.fromJSON out."${case}/result.json";
    in
    out
    // {
      "${case}/result.json" = b.toJSON (result // { inherit checks; }) + "\n";
    };
in
withChecks "microvm-fw-cfg" "vm3" (evalCase configs.fw-cfg-mode "vm3" true) "LoadCredential"
// withChecks "microvm-env" "vm1" (evalCase configs.env-mode "vm1" false) "EnvironmentFile"
// outputs "microvm-fw-cfg-not-imported" (evalCase configs.fw-cfg-mode "vm3" false)
