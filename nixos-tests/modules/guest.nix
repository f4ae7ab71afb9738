# vmcreds guest module: make sure systemd can import SMBIOS Type 11
# credentials at all (dmi_sysfs in the initrd), and verify at every boot that
# each expected credential arrived whole, before the services that need it.
{
  config,
  lib,
  utils,
  ...
}:

let
  inherit (lib)
    concatMap
    mapAttrsToList
    mkEnableOption
    mkIf
    mkOption
    literalExpression
    optional
    optionals
    types
    ;

  cfg = config.services.vmcreds.check;
  guestBin = "${config.services.vmcreds.package}/bin/vmcreds-guest";

  expectArgs =
    if builtins.isList cfg.expect then
      concatMap (n: [
        "--expect"
        n
      ]) cfg.expect
    else
      lib.concatLists (
        mapAttrsToList (n: bytes: [
          "--expect"
          "${n}:${toString bytes}"
        ]) cfg.expect
      );

  # Report destinations by kind, for the sandbox and the ordering.
  destKind = d: lib.head (lib.splitString ":" d);
  destRest = d: lib.concatStringsSep ":" (lib.tail (lib.splitString ":" d));
  virtioPorts = map destRest (lib.filter (d: destKind d == "virtio-port") cfg.reportTo);
  writtenPaths = map destRest (
    lib.filter (
      d:
      builtins.elem (destKind d) [
        "file"
        "unix"
      ]
    ) cfg.reportTo
  );
  usesVsock = cfg.notify || lib.any (d: destKind d == "vsock") cfg.reportTo;
  portDevice = name: "${utils.escapeSystemdPath "/dev/virtio-ports/${name}"}.device";

  checkCommand = [
    guestBin
    "check"
  ]
  ++ expectArgs
  ++ optionals (cfg.manifest != null) [
    "--manifest"
    cfg.manifest
  ]
  ++ optional cfg.strict "--strict"
  ++ concatMap (d: [
    "--report-to"
    d
  ]) cfg.reportTo
  ++ optional cfg.notify "--notify"
  ++ cfg.extraArgs;
in
{
  imports = [ ./common.nix ];

  options.services.vmcreds.check = {
    enable = mkEnableOption ''
      `vmcreds-check.service`, which verifies at boot that the SMBIOS Type 11
      credentials arrived whole (names, sizes, digests; never values) and
      reports it to the journal and, optionally, to the host'';

    expect = mkOption {
      type = types.either (types.listOf types.str) (types.attrsOf types.ints.unsigned);
      default = [ ];
      example = literalExpression ''
        [ "API_KEY" "DB_PASSWORD" "JWT_SECRET" ]   # or, with sizes in bytes:
        { API_KEY = 44; DB_PASSWORD = 44; JWT_SECRET = 88; }'';
      description = ''
        Credentials that must be present (`--expect NAME`), optionally with
        their size in bytes (`--expect NAME:BYTES`). Checked in addition to the
        `vmcreds.manifest` credential the host injects, so a credential the
        host forgot altogether is still caught.
      '';
    };

    manifest = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = ''
        A manifest file inside the guest to verify against (`--manifest`), in
        addition to the injected `vmcreds.manifest` credential.
      '';
    };

    strict = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Fail the unit when verification fails (`--strict`): an expected
        credential is missing, differs or was refused, or there is nothing to
        verify against, an unexpected credential, an anomaly in the SMBIOS
        table, or weak or insecure storage of `/run/credentials/@system`. A
        service with `Requires=vmcreds-check.service` and
        `After=vmcreds-check.service` (see
        {option}`services.vmcreds.check.requiredBy`) then never starts with a
        missing or damaged secret. Without it the unit only reports.
      '';
    };

    reportTo = mkOption {
      type = types.listOf (types.strMatching "(stdout|file:/.+|virtio-port:.+|vsock:[0-9]+:[0-9]+|unix:/.+)");
      default = [ ];
      example = [ "virtio-port:vmcreds.report" ];
      description = ''
        Where to send the JSON report (`--report-to`): `stdout` (the journal),
        `file:PATH`, `virtio-port:NAME` (QEMU; the host module's
        `report.portName`, default `vmcreds.report`), `vsock:CID:PORT`
        (cloud-hypervisor: `vsock:2:PORT` reaches the host's
        `<vsock socket>_PORT`), `unix:PATH`. The report holds names, sizes and
        keyed digests, never values.
      '';
    };

    notify = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Also send a one-line `STATUS=` verdict to the VMM notify socket
        (`vmm.notify_socket` credential) (`--notify`).
      '';
    };

    requiredBy = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "myapp.service" ];
      description = ''
        Units that must not start unless the check passed: each gets
        `Requires=` and `After=vmcreds-check.service`.
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "More arguments for `vmcreds-guest check`.";
    };

    fwCfg = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Also put `qemu_fw_cfg` into the initrd and load it there, for
        credentials passed as fw_cfg files `opt/io.systemd.credentials/NAME`:
        the host module's cloud-hypervisor mode `fw-cfg`, QEMU's
        `-fw_cfg name=opt/io.systemd.credentials/NAME` (microvm.nix's
        `credentialFiles`). systemd imports fw_cfg credentials in its first
        PID 1, before any unit runs; that PID 1 loads `qemu_fw_cfg` itself only
        when it has libkmod (NixOS's systemd does), otherwise the credentials
        are lost without a message above debug level. A kernel with
        `CONFIG_FW_CFG_SYSFS=y` needs neither.
      '';
    };
  };

  config = mkIf cfg.enable {
    # systemd imports SMBIOS credentials once, early in its first PID 1 (the
    # initrd's, with boot.initrd.systemd.enable). If dmi_sysfs cannot be loaded
    # there, nothing is imported and nothing is logged (systemd/systemd#37391).
    # availableKernelModules puts the module into the initrd, where PID 1 loads
    # it itself before importing; kernelModules also loads it in a scripted
    # initrd.
    boot.initrd.availableKernelModules = [ "dmi_sysfs" ] ++ optional cfg.fwCfg "qemu_fw_cfg";
    boot.initrd.kernelModules = [ "dmi_sysfs" ] ++ optional cfg.fwCfg "qemu_fw_cfg";

    # vmcreds-guest list / get / check for people and scripts.
    environment.systemPackages = [ config.services.vmcreds.package ];

    # Give the report ports a device unit to order against.
    services.udev.extraRules = lib.concatMapStrings (name: ''
      SUBSYSTEM=="virtio-ports", ATTR{name}=="${name}", TAG+="systemd"
    '') virtioPorts;

    systemd.services.vmcreds-check = {
      description = "Verify SMBIOS Type 11 credentials (vmcreds)";
      documentation = [ "https://github.com/vmcreds/vmcreds" ];
      wantedBy = [ "multi-user.target" ];
      # systemd imports the credentials before it starts any unit; this runs
      # in normal boot (after sysinit.target) and before the services that
      # consume them.
      before = [ "multi-user.target" ] ++ cfg.requiredBy;
      requiredBy = cfg.requiredBy;
      wants = map portDevice virtioPorts;
      after = map portDevice virtioPorts;
      unitConfig.ConditionVirtualization = "vm";
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = utils.escapeSystemdExecArgs checkCommand;
        # Root reads /sys/firmware/dmi (0400, CAP_SYS_ADMIN) and
        # /run/credentials/@system (0700); nothing else is needed.
        CapabilityBoundingSet = [
          "CAP_SYS_ADMIN"
          "CAP_DAC_OVERRIDE"
          "CAP_DAC_READ_SEARCH"
        ];
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        # "-": a missing directory is not an error at unit start.
        ReadWritePaths = map (p: "-${dirOf p}") writtenPaths;
        PrivateTmp = true;
        PrivateDevices = virtioPorts == [ ];
        PrivateNetwork = !usesVsock;
        RestrictAddressFamilies = [ "AF_UNIX" ] ++ optional usesVsock "AF_VSOCK";
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        # ProtectClock= implies a device allow-list, which would shut out the
        # report ports.
        ProtectClock = virtioPorts == [ ];
        ProtectHostname = true;
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" ];
        UMask = "0077";
      };
    };
  };
}
