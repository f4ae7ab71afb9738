# Evaluation cases for the host and guest modules, shared by
# - tests/module-assertions.nix: with nixpkgs' real module system (nix flake check);
# - eval/check.nix: with the stand-in in eval/ (check.sh, on machines without nixpkgs).
#
# evalHost / evalGuest: module config → the evaluated NixOS `config`.
# storePath: some path in the Nix store (a secret put there by mistake).
# Each case is a boolean that must be true.
{
  lib,
  evalHost,
  evalGuest,
  storePath,
}:

let
  # The messages of the vmcreds modules' failed assertions.
  failures =
    config:
    map (a: a.message) (
      lib.filter (a: lib.hasPrefix "services.vmcreds" a.message && !a.assertion) config.assertions
    );
  refused = pattern: vms: lib.any (lib.hasInfix pattern) (failures (evalHost { services.vmcreds.vms = vms; }));

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

  good = evalHost {
    services.vmcreds.vms = qemuVm {
      settings.ENVIRONMENT = "test";
      report.enable = true;
    };
  };
  goodVm = good.services.vmcreds.vms.a;
  goodUnit = good.systemd.services.vm-a;

  envMode = evalHost {
    services.vmcreds.vms.vm1 = {
      hypervisor = "cloud-hypervisor";
      cloudHypervisor.mode = "env";
      credentials.API_KEY = "/run/secrets/api-key";
    };
  };

  apiMode = evalHost {
    services.vmcreds.vms.vm2 = {
      hypervisor = "cloud-hypervisor";
      cloudHypervisor.vmConfig = "/etc/vm2.json";
      credentials.API_KEY = "/run/secrets/api-key";
    };
  };

  guest = evalGuest {
    services.vmcreds.check = {
      enable = true;
      expect = {
        API_KEY = 44;
        DB_PASSWORD = 44;
      };
      reportTo = [ "virtio-port:vmcreds.report" ];
      requiredBy = [ "app.service" ];
    };
  };
  checkUnit = guest.systemd.services.vmcreds-check;
in
{
  # `credentials.X = "${./secret}"` would copy the secret into the world-readable store.
  store-path-refused = refused "is in the Nix store" (qemuVm {
    credentials.API_KEY = storePath;
  });
  relative-path-refused = refused "not an absolute path" (qemuVm {
    credentials.API_KEY = "secrets/api-key";
  });
  bad-name-refused = refused "invalid credential name" (qemuVm {
    credentials."API,KEY" = "/run/secrets/api-key";
  });
  microvm-machine-refused = refused "microvm machine type" (qemuVm {
    qemu.command = [
      "qemu-system-x86_64"
      "-M"
      "microvm,x-option-roms=off"
    ];
  });
  microvm-machine-type-refused = refused "microvm machine type" (qemuVm {
    qemu.command = [
      "qemu-system-x86_64"
      "-machine"
      "accel=kvm,type=microvm"
    ];
  });
  qemu-in-microvm-unit-refused = refused "microvm.nix's QEMU runner" (qemuVm {
    unit = "microvm@a.service";
  });
  report-without-manifest-refused = refused "report.enable needs manifest" (qemuVm {
    report.enable = true;
    manifest = false;
  });
  api-without-config-refused = refused "needs the VmConfig JSON" {
    a = {
      hypervisor = "cloud-hypervisor";
      credentials.API_KEY = "/run/secrets/api-key";
    };
  };
  shared-unit-refused = refused "two VMs share a unit" {
    a = {
      hypervisor = "qemu";
      unit = "vm.service";
      qemu.command = [ "qemu-system-x86_64" ];
      settings.A = "1";
    };
    b = {
      hypervisor = "qemu";
      unit = "vm.service";
      qemu.command = [ "qemu-system-x86_64" ];
      settings.A = "1";
    };
  };

  good-config-passes = failures good == [ ];
  good-config-host-args =
    goodVm.hostArgs == [
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
  good-config-load-credential = goodUnit.serviceConfig.LoadCredential == [ "API_KEY:/run/secrets/api-key" ];
  good-config-exec-start =
    lib.hasInfix ''"--manifest-out" "/run/vmcreds/a/manifest.json" "--" "qemu-system-x86_64" "-machine" "q35" "-device" "virtio-serial-pci,id=vmcreds-serial"'' goodUnit.serviceConfig.ExecStart;
  good-config-report-socket =
    good.systemd.sockets.vmcreds-collect-a.listenStreams == [ "/run/vmcreds/a/report.sock" ]
    && lib.elem "vmcreds-collect-a.socket" goodUnit.requires
    && lib.hasInfix ''"collect" "--listen" "unix:/run/vmcreds/a/report.sock"'' good.systemd.services.vmcreds-collect-a.serviceConfig.ExecStart;
  percent-escaped-in-load-credential =
    (evalHost {
      services.vmcreds.vms = qemuVm { credentials.API_KEY = "/run/secrets/50%"; };
    }).systemd.services.vm-a.serviceConfig.LoadCredential == [ "API_KEY:/run/secrets/50%%" ];

  env-mode-is-a-drop-in =
    envMode.systemd.services."microvm@vm1".overrideStrategy == "asDropin"
    && envMode.systemd.services."microvm@vm1".serviceConfig.EnvironmentFile == "/run/vmcreds/vm1/platform.env"
    && envMode.systemd.services.vmcreds-prepare-vm1.serviceConfig.StandardOutput
      == "truncate:/run/vmcreds/vm1/platform.env"
    && envMode.systemd.services.vmcreds-prepare-vm1.serviceConfig.User == "microvm";
  env-mode-warns = lib.any (lib.hasInfix "command line") envMode.warnings;
  api-mode-socket-activated =
    apiMode.systemd.sockets.vm-vm2.listenStreams == [ "/run/vmcreds/vm2/api.sock" ]
    && lib.hasInfix ''"--api-socket" "fd=3"'' apiMode.systemd.services.vm-vm2.serviceConfig.ExecStart
    && lib.hasInfix ''"--api-socket" "/run/vmcreds/vm2/api.sock" "--vm-config" "/etc/vm2.json"'' apiMode.systemd.services.vm-vm2.serviceConfig.ExecStartPost;

  guest-dmi-sysfs-in-initrd =
    lib.elem "dmi_sysfs" guest.boot.initrd.availableKernelModules
    && lib.elem "dmi_sysfs" guest.boot.initrd.kernelModules;
  guest-check-command =
    lib.hasInfix ''"check" "--expect" "API_KEY:44" "--expect" "DB_PASSWORD:44" "--strict" "--report-to" "virtio-port:vmcreds.report"'' checkUnit.serviceConfig.ExecStart;
  guest-check-unit =
    checkUnit.serviceConfig.Type == "oneshot"
    && checkUnit.serviceConfig.RemainAfterExit
    && checkUnit.unitConfig.ConditionVirtualization == "vm"
    && lib.elem "multi-user.target" checkUnit.before
    && lib.elem "app.service" checkUnit.before
    && checkUnit.requiredBy == [ "app.service" ]
    && lib.elem "dev-virtio\\x2dports-vmcreds.report.device" checkUnit.after;
}
