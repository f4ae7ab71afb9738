# Evaluation cases for the host and guest modules, over the configurations in
# module-configs.nix, shared by
# - tests/module-assertions.nix: with nixpkgs' real module system (nix flake check);
# - eval/check.nix: with the stand-in in eval/ (check.sh), and with nixpkgs'
#   real lib when check.sh is given one (VMCREDS_NIXPKGS_LIB).
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
  configs = import ./module-configs.nix { inherit storePath; };
  eval = name: if configs.${name} ? host then evalHost configs.${name}.host else evalGuest configs.${name}.guest;

  # The messages of the vmcreds modules' failed assertions.
  failures =
    config:
    map (a: a.message) (
      lib.filter (a: lib.hasPrefix "services.vmcreds" a.message && !a.assertion) config.assertions
    );
  refused = pattern: name: lib.any (lib.hasInfix pattern) (failures (eval name));

  good = eval "good";
  goodVm = good.services.vmcreds.vms.a;
  goodUnit = good.systemd.services.vm-a;
  envMode = eval "env-mode";
  apiMode = eval "api-mode";
  fwCfg = eval "fw-cfg-mode";
  fwCfgVm = fwCfg.services.vmcreds.vms.vm3;
  fwCfgDropIn = fwCfg.systemd.services."microvm@vm3";
  anyName = eval "any-name";
  dots = eval "vm-name-dots";
  guest = eval "guest";
  checkUnit = guest.systemd.services.vmcreds-check;
  guestFwCfg = eval "guest-fw-cfg";
in
{
  store-path-refused = refused "is in the Nix store" "store-path";
  relative-path-refused = refused "not an absolute path" "relative-path";
  bad-name-refused = refused "invalid credential name" "bad-name";
  newline-path-refused = refused "cannot hold a control character" "newline-path";
  microvm-machine-refused = refused "microvm machine type" "microvm-machine";
  microvm-machine-type-refused = refused "microvm machine type" "microvm-machine-type";
  qemu-in-microvm-unit-refused = refused "microvm.nix's QEMU runner" "qemu-in-microvm-unit";
  report-without-manifest-refused = refused "report.enable needs manifest" "report-without-manifest";
  api-without-config-refused = refused "needs the VmConfig JSON" "api-without-config";
  shared-unit-refused = refused "two VMs share a unit" "shared-unit";
  vm-name-refused =
    lib.all (n: refused "services.vmcreds.vms.${builtins.toJSON n}: a VM name" "vm-name-refused") [
      "my vm"
      "50%"
      "a\\b"
    ];
  fw-cfg-bad-name-refused =
    refused ''["A_NAME_LONGER_THAN_28_BYTES_X","a*b"] cannot be an fw_cfg file name'' "fw-cfg-bad-name";

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
    (eval "percent-path").systemd.services.vm-a.serviceConfig.LoadCredential == [ "API_KEY:/run/secrets/50%%" ];
  # The ID as systemd must read it back: '%' doubled (or KEY%n would become
  # KEYvm-a.service), '\' doubled (or A\B would become AB), a leading space
  # escaped; the path's '\' stays as it is (systemd does not unescape it).
  any-name-escaped-in-load-credential =
    lib.sort (x: y: x < y) anyName.systemd.services.vm-a.serviceConfig.LoadCredential == [
      "A\\\\B:/run/secrets/a\\b"
      "KEY%%Z:/run/secrets/key-z"
      "KEY%%n:/run/secrets/key-n"
      "\\ lead:/run/secrets/lead"
      "dot.ted.:/run/secrets/dot.ted"
      "with space:/run/secrets/with space"
    ];
  any-name-exec-start =
    lib.hasInfix ''"--load" "KEY%%n:KEY%%n"'' anyName.systemd.services.vm-a.serviceConfig.ExecStart
    && lib.hasInfix ''"--load" "A\\B:A\\B"'' anyName.systemd.services.vm-a.serviceConfig.ExecStart
    && failures anyName == [ ];
  vm-name-with-dots =
    dots.systemd.services ? "vm-my.vm"
    && dots.systemd.sockets ? "vmcreds-collect-my.vm"
    && dots.services.vmcreds.vms."my.vm".manifestDir == "/run/vmcreds/my.vm"
    && failures dots == [ ];

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

  fw-cfg-mode-drop-in =
    failures fwCfg == [ ]
    && fwCfgVm.unit == "microvm@vm3.service"
    && fwCfgDropIn.overrideStrategy == "asDropin"
    && fwCfgDropIn.serviceConfig.RuntimeDirectory == "vmcreds-fw-cfg/vm3"
    && fwCfgDropIn.serviceConfig.RuntimeDirectoryMode == "0700"
    && lib.sort (x: y: x < y) fwCfgDropIn.serviceConfig.LoadCredential == [
      "API_KEY:/run/secrets/api-key"
      "DB.PASSWORD:/run/secrets/50%%/db-password"
    ]
    && fwCfgVm.user == "microvm"
    && fwCfg.warnings == [ ];
  fw-cfg-mode-host-args =
    lib.take 9 fwCfgVm.hostArgs == [
      "cloud-hypervisor"
      "--load"
      "API_KEY:API_KEY"
      "--load"
      "DB.PASSWORD:DB.PASSWORD"
      "--set"
      "ENVIRONMENT=test"
      "--oem"
      "io.systemd.credential:vmm.notify_socket=vsock-stream:2:8888"
    ]
    && lib.elem "--fw-cfg" fwCfgVm.hostArgs
    && lib.hasInfix ''"--runtime-dir" "/run/vmcreds-fw-cfg/vm3"'' (toString (map builtins.toJSON fwCfgVm.hostArgs));
  fw-cfg-mode-microvm-module =
    fwCfgVm.cloudHypervisor.microvmModule.microvm.extraArgsScript == "${fwCfgVm.cloudHypervisor.fwCfg.script}"
    && fwCfgVm.cloudHypervisor.microvmModule.microvm.cloud-hypervisor.package == fwCfgVm.cloudHypervisor.fwCfg.package
    && lib.hasInfix "fw_cfg" fwCfgVm.cloudHypervisor.fwCfg.package.cargoBuildFeatures;

  guest-dmi-sysfs-in-initrd =
    lib.elem "dmi_sysfs" guest.boot.initrd.availableKernelModules
    && lib.elem "dmi_sysfs" guest.boot.initrd.kernelModules
    && !lib.elem "qemu_fw_cfg" guest.boot.initrd.kernelModules;
  guest-fw-cfg-in-initrd =
    lib.elem "qemu_fw_cfg" guestFwCfg.boot.initrd.availableKernelModules
    && lib.elem "qemu_fw_cfg" guestFwCfg.boot.initrd.kernelModules;
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
