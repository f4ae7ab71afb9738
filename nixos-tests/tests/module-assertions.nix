# Evaluation-only checks of the host module (no VM): bad configurations are
# refused by an assertion with a useful message, and a good one produces the
# expected vmcreds-host arguments. The derivation builds only if every case
# holds; a failing case names itself in the evaluation error.
{ self, pkgs }:

let
  inherit (pkgs) lib;

  evalHost =
    vms:
    (pkgs.nixos {
      imports = [ self.nixosModules.host ];
      boot.isContainer = true; # no boot loader or file systems to assert about
      services.vmcreds.vms = vms;
    }).config;

  # The messages of this module's failed assertions.
  failures =
    config:
    map (a: a.message) (
      lib.filter (a: lib.hasPrefix "services.vmcreds" a.message && !a.assertion) config.assertions
    );
  refused = pattern: vms: lib.any (lib.hasInfix pattern) (failures (evalHost vms));

  qemuVm = extra: {
    a = lib.recursiveUpdate {
      hypervisor = "qemu";
      qemu.command = [
        "qemu-system-x86_64"
        "-machine"
        "q35"
      ];
      credentials.API_KEY = "/run/secrets/api-key";
    } extra;
  };

  good = evalHost (qemuVm {
    settings.ENVIRONMENT = "test";
  });

  cases = {
    # `credentials.X = "${./secret}"` copies the secret into the world-readable store.
    store-path = refused "is in the Nix store" (qemuVm {
      credentials.API_KEY = "${pkgs.writeText "not-a-secret" "x"}";
    });
    relative-path = refused "not an absolute path" (qemuVm {
      credentials.API_KEY = "secrets/api-key";
    });
    bad-name = refused "invalid credential name" (qemuVm {
      credentials."API,KEY" = "/run/secrets/api-key";
    });
    microvm-machine = refused "microvm machine type" (qemuVm {
      qemu.command = [
        "qemu-system-x86_64"
        "-M"
        "microvm,x-option-roms=off"
      ];
    });
    microvm-machine-type = refused "microvm machine type" (qemuVm {
      qemu.command = [
        "qemu-system-x86_64"
        "-machine"
        "accel=kvm,type=microvm"
      ];
    });
    qemu-in-microvm-unit = refused "microvm.nix's QEMU runner" (qemuVm {
      unit = "microvm@a.service";
    });
    report-without-manifest = refused "report.enable needs manifest" (qemuVm {
      report.enable = true;
      manifest = false;
    });
    api-without-config = refused "needs the VmConfig JSON" {
      a = {
        hypervisor = "cloud-hypervisor";
        credentials.API_KEY = "/run/secrets/api-key";
      };
    };
    good-config-passes = failures good == [ ];
    good-config-args =
      good.services.vmcreds.vms.a.hostArgs == [
        "qemu"
        "--load"
        "API_KEY:API_KEY"
        "--set"
        "ENVIRONMENT=test"
        "--encoding"
        "binary"
        "--manifest-out"
        "/run/vmcreds/a/manifest.json"
      ];
    good-config-load-credential =
      good.systemd.services.vm-a.serviceConfig.LoadCredential == [ "API_KEY:/run/secrets/api-key" ];
    env-mode-is-a-drop-in =
      let
        config = evalHost {
          vm2 = {
            hypervisor = "cloud-hypervisor";
            cloudHypervisor.mode = "env";
            credentials.API_KEY = "/run/secrets/api-key";
          };
        };
      in
      config.systemd.services."microvm@vm2".overrideStrategy == "asDropin"
      && config.systemd.services.vmcreds-prepare-vm2.serviceConfig.StandardOutput
        == "truncate:/run/vmcreds/vm2/platform.env";
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
