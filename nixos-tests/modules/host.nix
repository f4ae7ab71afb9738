# vmcreds host module: deliver secrets to VM guests as SMBIOS Type 11
# credentials, with no shell preStart and no secret in the Nix store.
#
# For each services.vmcreds.vms.<name>:
# - the secret files stay where they are (root 0400, e.g. sops-nix or agenix);
#   systemd's LoadCredential= hands them to the one process that needs them,
#   vmcreds-host, as $CREDENTIALS_DIRECTORY/<NAME>;
# - qemu: the module owns the VM unit and runs
#     vmcreds-host qemu --load NAME:NAME ... -- <qemu.command>
#   so QEMU reads each credential from a sealed memfd (-smbios type=11,path=/dev/fd/N);
# - cloud-hypervisor, mode "api": the module owns the VM unit; cloud-hypervisor
#   starts with only an API socket (socket-activated, 0600) and vmcreds-host
#   sends vm.create (OEM strings inserted into vmConfig) and vm.boot: no secret on argv;
# - cloud-hypervisor, mode "env": for microvm.nix runners patched to append
#   `--platform "$MICROVM_PLATFORM_OPS"`: a oneshot unit writes that variable
#   into an EnvironmentFile read by the VM unit (a drop-in on microvm@<name>);
#   the runner then puts it on argv, where every local user can read it;
# - report.enable: systemd listens on the report socket; the hypervisor's
#   connection starts vmcreds-collect-<name>.service, which receives the
#   guest's report and verifies it against the manifest of the VM's start.
{
  config,
  options,
  lib,
  pkgs,
  utils,
  ...
}:

let
  inherit (lib)
    concatLists
    concatMap
    mapAttrsToList
    mkEnableOption
    mkIf
    mkMerge
    mkOption
    literalExpression
    optional
    optionals
    types
    ;

  cfg = config.services.vmcreds;
  hostBin = "${cfg.package}/bin/vmcreds-host";
  enabledVms = lib.filterAttrs (_: vm: vm.enable) cfg.vms;

  # systemd.services wants unit names without the ".service" suffix.
  serviceAttr = unit: lib.removeSuffix ".service" unit;
  isMicrovmUnit = unit: lib.hasPrefix "microvm@" unit;

  # systemd's credential_name_valid() (src/shared/creds-util.c: 1-255 bytes,
  # 0x20-0x7E, no '/' or ':', not '.' or '..'), plus '=', which ends the name
  # in an OEM string.
  systemdNameValid =
    n:
    let
      len = lib.stringLength n;
    in
    len >= 1
    && len <= 255
    && builtins.match "[ -~]*" n != null
    && !(lib.hasInfix "/" n)
    && !(lib.hasInfix ":" n)
    && !(lib.hasInfix "=" n)
    && n != "."
    && n != "..";
  # The portable rule vmcreds-host applies by default: safe in every hypervisor's
  # option parser.
  portableNameValid = n: systemdNameValid n && builtins.match "[A-Za-z0-9_.@+-]+" n != null;

  # QEMU option values: a ',' must be doubled.
  qemuEscape = lib.replaceStrings [ "," ] [ ",," ];
  # LoadCredential=ID:PATH. systemd reads the ID with extract_first_word()
  # (a '\' escapes the next character, so `KEY\Z` would become `KEYZ`) and
  # then expands '%' specifiers in it (`KEY%n` would become `KEYvm-a.service`);
  # the PATH is taken as it stands, with '%' specifiers expanded. A leading
  # space would be stripped from the value: escape it.
  loadCredentialId =
    n:
    let
      e = lib.replaceStrings [ "\\" "%" ] [ "\\\\" "%%" ] n;
    in
    if lib.hasPrefix " " e then "\\" + e else e;
  systemdEscapePercent = lib.replaceStrings [ "%" ] [ "%%" ];

  # VM names end up in unit names, paths and RuntimeDirectory=: keep them to
  # what all of those carry unchanged.
  vmNameValid = n: builtins.match "[A-Za-z0-9_.-]+" n != null && n != "." && n != "..";

  # Is microvm.nix's host module imported (microvm.vms exists)?
  hasMicrovm = options ? microvm && options.microvm ? vms;

  # The values given to -M/-machine/--machine in a QEMU command line.
  qemuMachineValues =
    cmd:
    let
      n = builtins.length cmd;
      at = builtins.elemAt cmd;
    in
    concatMap (
      i:
      let
        a = at i;
      in
      if
        builtins.elem a [
          "-M"
          "-machine"
          "--machine"
        ]
        && i + 1 < n
      then
        [ (at (i + 1)) ]
      else if lib.hasPrefix "-machine=" a || lib.hasPrefix "--machine=" a then
        [ (lib.last (lib.splitString "=" a)) ]
      else
        [ ]
    ) (lib.range 0 (n - 1));
  isMicrovmMachine =
    v:
    builtins.match "(type=)?microvm(,.*)?" v != null || builtins.match ".*,type=microvm(,.*)?" v != null;

  # nixpkgs' cloud-hypervisor with its `fw_cfg` cargo feature added (the
  # feature --fw-cfg-config needs; nixpkgs builds without it).
  withFwCfg =
    package:
    package.overrideAttrs (
      old:
      let
        add =
          attr:
          lib.concatStringsSep "," (
            lib.filter (f: f != "" && f != "fw_cfg") (lib.splitString "," (old.${attr} or "")) ++ [ "fw_cfg" ]
          );
      in
      {
        buildFeatures = lib.filter (f: f != "fw_cfg") (old.buildFeatures or [ ]) ++ [ "fw_cfg" ];
        cargoBuildFeatures = add "cargoBuildFeatures";
        cargoCheckFeatures = add "cargoCheckFeatures";
      }
    );

  # Mode fw-cfg: microvm.nix's `microvm.extraArgsScript`. microvm-run runs it
  # as `runtime_args=$(SCRIPT)` and then `exec … ${runtime_args:-}`: unquoted,
  # so its output is split on whitespace and each word is a glob pattern. The
  # script passes on vmcreds-host's line only if it is exactly
  # `--fw-cfg-config items=[…]` with nothing inside the brackets but
  # [A-Za-z0-9_./=,:@+%-] and at least one '/': two words, no '*' or '?', no
  # path component that holds both '[' and ']' (so no bracket expression), no
  # backslash, quote or control character. Anything else stops the start
  # (`set -e` in microvm-run) without printing what vmcreds-host printed.
  fwCfgScript =
    name: vm:
    pkgs.writeShellScript "vmcreds-fw-cfg-${name}" ''
      set -euo pipefail
      line=$(${lib.escapeShellArgs ([ hostBin ] ++ vm.hostArgs)})
      rest=''${line#"--fw-cfg-config items=["}
      inner=''${rest%"]"}
      if [[ $line != "--fw-cfg-config items=["*"]" || $inner == *[!A-Za-z0-9_./=,:@+%-]* || $inner != */* ]]; then
        echo "vmcreds-fw-cfg-${name}: vmcreds-host did not print one --fw-cfg-config argument that is safe to splice unquoted; not starting the VM" >&2
        exit 1
      fi
      printf '%s\n' "$line"
    '';

  vmModule =
    { name, config, ... }:
    let
      vm = config;
      ch = vm.cloudHypervisor;
      # Sources, in a fixed order: secrets by LoadCredential ID (a bare name is
      # looked up in $CREDENTIALS_DIRECTORY), then settings, then raw OEM strings.
      sourceArgs =
        concatLists (
          mapAttrsToList (n: _: [
            "--load"
            "${n}:${n}"
          ]) vm.credentials
        )
        ++ concatLists (
          mapAttrsToList (n: v: [
            "--set"
            "${n}=${v}"
          ]) vm.settings
        )
        ++ concatMap (s: [
          "--oem"
          s
        ]) vm.oemStrings
        ++ optional vm.allowAnyName "--allow-any-name"
        ++ [
          "--encoding"
          vm.encoding
        ]
        ++ (
          if vm.manifest then
            [
              "--manifest-out"
              vm.manifestFile
            ]
          else
            [ "--no-manifest" ]
        );
    in
    {
      options = {
        enable = mkEnableOption "credential delivery to this VM" // {
          default = true;
        };

        hypervisor = mkOption {
          type = types.enum [
            "qemu"
            "cloud-hypervisor"
          ];
          example = "cloud-hypervisor";
          description = ''
            The hypervisor that runs this VM. `qemu`: the module creates the
            unit {option}`unit` and runs {option}`qemu.command` through
            `vmcreds-host qemu`. `cloud-hypervisor`: see
            {option}`cloudHypervisor.mode`.
          '';
        };

        unit = mkOption {
          type = types.strMatching ".+\\.service";
          default =
            if vm.hypervisor == "cloud-hypervisor" && ch.mode != "api" then
              "microvm@${name}.service"
            else
              "vm-${name}.service";
          defaultText = literalExpression ''
            "microvm@<name>.service" with cloud-hypervisor in mode "fw-cfg" or "env" (microvm.nix),
            else "vm-<name>.service" (a unit this module creates)'';
          description = ''
            The systemd unit that runs the VM. With `qemu` and with
            cloud-hypervisor in mode `api` the module creates this unit; with
            cloud-hypervisor in mode `env` it adds a drop-in to an existing unit
            (microvm.nix's `microvm@<name>.service`).
          '';
        };

        user = mkOption {
          type = types.str;
          default = if isMicrovmUnit vm.unit then "microvm" else "root";
          defaultText = literalExpression ''if unit is "microvm@…" then "microvm" else "root"'';
          description = ''
            The user that runs the VM and vmcreds-host for it, and owns
            {option}`manifestDir`. LoadCredential= makes the secrets readable by
            this user inside the unit only; the files themselves stay as they
            are.
          '';
        };

        group = mkOption {
          type = types.str;
          default = if isMicrovmUnit vm.unit then "kvm" else "root";
          defaultText = literalExpression ''if unit is "microvm@…" then "kvm" else "root"'';
          description = "The group of {option}`user`.";
        };

        credentials = mkOption {
          type = types.attrsOf types.str;
          default = { };
          example = {
            API_KEY = "/run/secrets/host-api-key";
            DB_PASSWORD = "/run/secrets/host-db-password";
          };
          description = ''
            Secrets: credential name → absolute path of a file on the host
            (root 0400 is fine). The file is read at VM start through systemd's
            `LoadCredential=NAME:PATH`; its bytes are delivered binary-safe.
            Give a string, never a Nix path literal: `./secret` would be copied
            into the world-readable Nix store (this is refused).
          '';
        };

        settings = mkOption {
          type = types.attrsOf types.str;
          default = { };
          example = {
            ENVIRONMENT = "test";
            CLUSTER = "eu-1";
          };
          description = ''
            Non-secret credentials: name → value, delivered like the secrets
            (`vmcreds-host --set NAME=VALUE`). The values are in the Nix store
            and on vmcreds-host's command line: never put a secret here.
          '';
        };

        oemStrings = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "io.systemd.credential:vmm.notify_socket=vsock-stream:2:8888" ];
          description = ''
            Raw, non-secret OEM strings passed as they are (`--oem`), e.g. the
            `vmm.notify_socket` credential microvm.nix adds for cloud-hypervisor
            when `microvm.vsock.cid` is set: with mode `env` the whole
            `--platform` value comes from vmcreds, so repeat it here.
          '';
        };

        allowAnyName = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Accept any name systemd accepts instead of the portable
            `[A-Za-z0-9_.@+-]` (`--allow-any-name`). Names with `,` `[` `]` `"`
            or spaces break hypervisor option parsers.
          '';
        };

        encoding = mkOption {
          type = types.enum [
            "binary"
            "text"
          ];
          default = "binary";
          description = ''
            `binary`: `io.systemd.credential.binary:NAME=<base64>` (any bytes, every
            parser). `text`: the plain form, refused by vmcreds-host for values
            the target cannot carry.
          '';
        };

        manifest = mkOption {
          type = types.bool;
          default = true;
          description = ''
            Inject the `vmcreds.manifest` credential (names, sizes and keyed
            digests, never values) so the guest can verify with no
            configuration, and write the same manifest to {option}`manifestFile`.
          '';
        };

        manifestDir = mkOption {
          type = types.str;
          default = "/run/vmcreds/${name}";
          defaultText = literalExpression ''"/run/vmcreds/<name>"'';
          description = ''
            Directory (0700, owned by {option}`user`) for this VM's manifest,
            the guest's report and, in mode `env`, the environment file.
          '';
        };

        manifestFile = mkOption {
          type = types.str;
          readOnly = true;
          default = "${vm.manifestDir}/manifest.json";
          defaultText = literalExpression ''"''${manifestDir}/manifest.json"'';
          description = "Where vmcreds-host writes the manifest it injected (`--manifest-out`).";
        };

        report = {
          enable = mkEnableOption ''
            the report listener: systemd listens on {option}`report.socket`
            (`vmcreds-collect-<name>.socket`); the hypervisor's connection starts
            `vmcreds-collect-<name>.service` (`vmcreds-host collect`), which
            receives one report from the guest's `vmcreds-check.service`,
            verifies it against the manifest of the VM's start, and fails unless
            every credential arrived whole'';

          socket = mkOption {
            type = types.nullOr types.str;
            default = if vm.hypervisor == "qemu" then "${vm.manifestDir}/report.sock" else null;
            defaultText = literalExpression ''"''${manifestDir}/report.sock" for qemu, else null'';
            example = "/var/lib/microvms/vm1/notify.vsock_9999";
            description = ''
              Unix socket systemd listens on for the report
              (`vmcreds-collect-<name>.socket`, mode 0600, owner {option}`user`).
              With QEMU the module attaches it
              to the guest as the virtio-serial port {option}`report.portName`
              (the guest reports with `--report-to virtio-port:<portName>`).
              With cloud-hypervisor it must be `<vsock socket>_<port>`: the
              hybrid vsock device connects there when the guest reports with
              `--report-to vsock:2:<port>`.
            '';
          };

          portName = mkOption {
            type = types.str;
            default = "vmcreds.report";
            description = "Name of the virtio-serial port (QEMU) the guest writes its report to.";
          };

          timeout = mkOption {
            type = types.nullOr types.ints.positive;
            default = 300;
            description = "Seconds the listener waits for the report before it fails (`--timeout`).";
          };

          file = mkOption {
            type = types.str;
            readOnly = true;
            default = "${vm.manifestDir}/report.json";
            defaultText = literalExpression ''"''${manifestDir}/report.json"'';
            description = "Where the listener keeps the report it received (`--report-out`).";
          };
        };

        qemu = {
          command = mkOption {
            type = types.listOf types.str;
            default = [ ];
            example = literalExpression ''
              [ "''${pkgs.qemu_kvm}/bin/qemu-system-x86_64" "-machine" "q35,accel=kvm"
                "-m" "1024" "-nographic" "-kernel" "…" ]'';
            description = ''
              The QEMU command line, one argument per element (no shell). It
              runs as `vmcreds-host qemu … -- <command>`, which appends
              `-smbios type=11,path=/dev/fd/N` for each credential. The machine
              type must build SMBIOS tables (`pc`, `q35`): `-M microvm` has none
              and is refused. `path=` needs QEMU 7.2.18, 9.2.4 or ≥ 10.0
              (the buffer-overrun fix); older releases are refused.
            '';
          };

          runtimeDir = mkOption {
            type = types.nullOr types.str;
            default = null;
            description = ''
              Instead of sealed memfds, write each OEM string as a 0400 file in
              this private directory (`--runtime-dir`), for QEMU builds that cannot
              open `/dev/fd/N`.
            '';
          };

          reportArgs = mkOption {
            type = types.listOf types.str;
            readOnly = true;
            description = "QEMU arguments that attach the report socket as a virtio-serial port (empty unless report.enable).";
            default = optionals vm.report.enable [
              "-device"
              "virtio-serial-pci,id=vmcreds-serial"
              "-chardev"
              # A client of vmcreds-collect-<name>.socket, which systemd listens
              # on from boot: QEMU's connection at start-up starts the listener
              # service (no reconnect option, whose semantics vary by QEMU
              # version).
              "socket,id=vmcreds-report,path=${qemuEscape (toString vm.report.socket)}"
              "-device"
              "virtserialport,bus=vmcreds-serial.0,chardev=vmcreds-report,name=${qemuEscape vm.report.portName}"
            ];
          };
        };

        cloudHypervisor = {
          mode = mkOption {
            type = types.enum [
              "api"
              "fw-cfg"
              "env"
            ];
            default = "api";
            description = ''
              How the credentials reach cloud-hypervisor.

              `fw-cfg` (microvm.nix, upstream options only): each credential
              travels as an fw_cfg file (`opt/io.systemd.credentials/NAME`),
              which systemd imports before SMBIOS. The module adds a drop-in to
              {option}`unit` (microvm.nix's `microvm@<name>.service`) with
              `LoadCredential=` and a private `RuntimeDirectory=`
              ({option}`cloudHypervisor.fwCfg.runtimeDir`), and the microvm's
              runner gets {option}`cloudHypervisor.microvmModule`:
              `microvm.cloud-hypervisor.package` = {option}`cloudHypervisor.fwCfg.package`
              (cloud-hypervisor built with its `fw_cfg` cargo feature) and
              `microvm.extraArgsScript`, which runs
              `vmcreds-host cloud-hypervisor --fw-cfg --runtime-dir …`: the
              decoded values are 0400 files in a fresh 0700 directory, only their
              paths are on cloud-hypervisor's command line, and systemd removes
              them when the unit stops. Names ≤ 28 bytes. The guest needs
              `qemu_fw_cfg` (and libkmod, or a built-in driver) in its initrd:
              `services.vmcreds.check.fwCfg = true`.

              `api` (preferred): the module creates {option}`unit`, which starts
              cloud-hypervisor with nothing but a socket-activated API socket
              (mode 0600, owner {option}`user`); vmcreds-host then sends
              `vm.create` with the strings inserted into {option}`cloudHypervisor.vmConfig`
              and `vm.boot`. No secret is ever on a command line. Anyone who can
              open the API socket can read them back with `vm.info`, and
              cloud-hypervisor logs the config at `-v`: keep the socket private
              and do not pass `-v`. Not usable with microvm.nix's runner, which
              boots from the command line.

              `env`: for microvm.nix runners patched to append
              `--platform "$MICROVM_PLATFORM_OPS"` (not upstream microvm.nix).
              `vmcreds-prepare-<name>.service` writes `MICROVM_PLATFORM_OPS=…`
              (exactly one `--platform` value, every string in an alphabet all
              cloud-hypervisor parsers carry) into {option}`cloudHypervisor.envFile`
              (0600), and a drop-in makes {option}`unit` read it. The value then
              sits on cloud-hypervisor's argv, readable by every local user in
              `/proc/<pid>/cmdline`: this replaces the shell preStart safely but
              not privately. The runner must not pass a second `--platform`.
            '';
          };

          platformKeys = mkOption {
            type = types.attrsOf types.str;
            default = { };
            example = {
              serial_number = "vm1";
            };
            description = "Other `--platform` keys to carry in the same value (`--platform-key K=V`).";
          };

          envFile = mkOption {
            type = types.str;
            default = "${vm.manifestDir}/platform.env";
            defaultText = literalExpression ''"''${manifestDir}/platform.env"'';
            description = "Mode `env`: the EnvironmentFile holding `MICROVM_PLATFORM_OPS`.";
          };

          package = lib.mkPackageOption pkgs "cloud-hypervisor" { } // {
            description = "Mode `api`: the cloud-hypervisor package the VM unit runs.";
          };

          apiSocket = mkOption {
            type = types.str;
            default = "${vm.manifestDir}/api.sock";
            defaultText = literalExpression ''"''${manifestDir}/api.sock"'';
            description = "Mode `api`: the API socket (a systemd socket unit, passed as `--api-socket fd=3`).";
          };

          vmConfig = mkOption {
            type = types.nullOr types.path;
            default = null;
            example = literalExpression ''
              pkgs.writeText "vm1.json" (builtins.toJSON {
                payload = { kernel = "…/bzImage"; cmdline = "console=ttyS0 root=/dev/vda"; };
                cpus.boot_vcpus = 2; memory.size = 1073741824;
              })'';
            description = ''
              Mode `api`: cloud-hypervisor's `VmConfig` JSON (non-secret; a store
              path is fine). vmcreds-host adds `platform.oem_strings`, keeping any
              strings already there.
            '';
          };

          extraArgs = mkOption {
            type = types.listOf types.str;
            default = [ ];
            description = "Mode `api`: more cloud-hypervisor arguments (e.g. `--log-file`); never `-v`.";
          };

          fwCfg = {
            package = mkOption {
              type = types.package;
              default = withFwCfg ch.package;
              defaultText = literalExpression ''
                cloudHypervisor.package.overrideAttrs (old: {
                  cargoBuildFeatures = …old features… + ",fw_cfg";
                  cargoCheckFeatures = …old features… + ",fw_cfg";
                })'';
              description = ''
                Mode `fw-cfg`: the cloud-hypervisor the microvm's runner runs
                (`microvm.cloud-hypervisor.package`). nixpkgs' package is built
                without the `fw_cfg` cargo feature, which `--fw-cfg-config`
                needs; the default rebuilds it with the feature added.
                vmcreds-host asks the binary (`--cloud-hypervisor`) and refuses
                one without `--fw-cfg-config` before anything is written.
              '';
            };

            runtimeDir = mkOption {
              type = types.str;
              readOnly = true;
              default = "/run/vmcreds-fw-cfg/${name}";
              defaultText = literalExpression ''"/run/vmcreds-fw-cfg/<name>"'';
              description = ''
                Mode `fw-cfg`: the unit's `RuntimeDirectory=` (0700, owned by
                {option}`user`), where vmcreds-host writes the 0400 credential
                files at each start (`--runtime-dir`) for cloud-hypervisor to
                read; systemd removes it when the unit stops.
              '';
            };

            script = mkOption {
              type = types.package;
              readOnly = true;
              default = fwCfgScript name vm;
              defaultText = literalExpression ''"vmcreds-fw-cfg-<name>", a shell script'';
              description = ''
                Mode `fw-cfg`: the microvm's `microvm.extraArgsScript`. It runs
                vmcreds-host, checks that its one line of output is exactly
                `--fw-cfg-config items=[…]` with nothing word splitting or
                globbing could change (the runner splices it unquoted), and
                prints it; any failure stops the VM's start.
              '';
            };
          };

          microvmModule = mkOption {
            type = types.attrs;
            readOnly = true;
            default = {
              microvm.cloud-hypervisor.package = ch.fwCfg.package;
              microvm.extraArgsScript = "${ch.fwCfg.script}";
            };
            defaultText = literalExpression ''
              {
                microvm.cloud-hypervisor.package = cloudHypervisor.fwCfg.package;
                microvm.extraArgsScript = "''${cloudHypervisor.fwCfg.script}";
              }'';
            description = ''
              Mode `fw-cfg`: the settings the microvm's own configuration needs
              (upstream microvm.nix options). With microvm.nix's host module
              and `microvm.vms.<name>.config`, the module adds it to
              `microvm.vms.<name>.extraModules` itself
              ({option}`cloudHypervisor.addToMicrovm`); a microvm from a flake
              must import it in its `nixosConfiguration`. Either way the module
              checks that the microvm's runner really runs the script.
            '';
          };

          addToMicrovm = mkOption {
            type = types.bool;
            default = hasMicrovm;
            defaultText = literalExpression "true when microvm.nix's host module is imported";
            description = ''
              Mode `fw-cfg`: add {option}`cloudHypervisor.microvmModule` to
              `microvm.vms.<name>.extraModules` (which microvm.nix applies to
              VMs declared with `config`). Needs `microvm.vms.<name>` declared
              on this host.
            '';
          };
        };

        hostArgs = mkOption {
          type = types.listOf types.str;
          readOnly = true;
          defaultText = literalExpression "computed from the VM's other options";
          description = ''
            The vmcreds-host arguments (subcommand first) this module runs for
            the VM; for QEMU they precede `--` and the QEMU command line.
          '';
          default =
            if vm.hypervisor == "qemu" then
              [ "qemu" ]
              ++ sourceArgs
              ++ optionals (vm.qemu.runtimeDir != null) [
                "--runtime-dir"
                vm.qemu.runtimeDir
              ]
            else
              [ "cloud-hypervisor" ]
              ++ sourceArgs
              ++ concatLists (
                mapAttrsToList (k: v: [
                  "--platform-key"
                  "${k}=${v}"
                ]) ch.platformKeys
              )
              ++ (
                if ch.mode == "api" then
                  [
                    "--api-socket"
                    ch.apiSocket
                    "--vm-config"
                    (if ch.vmConfig == null then "" else "${ch.vmConfig}")
                  ]
                else if ch.mode == "fw-cfg" then
                  [
                    "--fw-cfg"
                    "--runtime-dir"
                    ch.fwCfg.runtimeDir
                    "--cloud-hypervisor"
                    (lib.getExe' ch.fwCfg.package "cloud-hypervisor")
                  ]
                else
                  [
                    "--format"
                    "env"
                  ]
              );
        };
      };
    };

  loadCredentials =
    vm: mapAttrsToList (n: path: "${loadCredentialId n}:${systemdEscapePercent path}") vm.credentials;

  vmAssertions =
    name: vm:
    let
      where = "services.vmcreds.vms.${name}";
      nameOk = if vm.allowAnyName then systemdNameValid else portableNameValid;
      names = lib.attrNames vm.credentials ++ lib.attrNames vm.settings;
      badNames = lib.filter (n: !nameOk n) names;
      storePaths = lib.filter (p: lib.hasPrefix "${builtins.storeDir}/" p) (lib.attrValues vm.credentials);
      relPaths = lib.filter (p: !lib.hasPrefix "/" p) (lib.attrValues vm.credentials);
      badPaths = lib.filter (p: builtins.match "[^[:cntrl:]]*[^[:space:]]" p == null) (
        lib.attrValues vm.credentials
      );
      isFwCfg = vm.hypervisor == "cloud-hypervisor" && vm.cloudHypervisor.mode == "fw-cfg";
      # fw_cfg file names are at most 55 bytes: opt/io.systemd.credentials/ + 28.
      badFwCfgNames = lib.filter (n: builtins.match "[A-Za-z0-9_.@+%-]{1,28}" n == null) names;
      microvmVm = config.microvm.vms.${name};
      # The microvm's own configuration, as microvm.nix's host module reads it.
      microvmGuest =
        if microvmVm.flake != null then
          microvmVm.flake.nixosConfigurations.${name}.config
        else if microvmVm.evaluatedConfig != null then
          microvmVm.evaluatedConfig.config
        else
          microvmVm.config.config;
      guestRuns = microvmGuest.microvm.extraArgsScript or null;
      both = lib.intersectLists (lib.attrNames vm.credentials) (lib.attrNames vm.settings);
    in
    [
      {
        assertion = vmNameValid name;
        message = "services.vmcreds.vms.${builtins.toJSON name}: a VM name becomes part of unit names, paths and RuntimeDirectory=; use [A-Za-z0-9_.-] (not \".\" or \"..\")";
      }
      {
        assertion = badPaths == [ ];
        message = "${where}.credentials: ${builtins.toJSON badPaths}: a path in a unit file cannot hold a control character or end in whitespace";
      }
      {
        assertion = storePaths == [ ];
        message = "${where}.credentials: ${toString storePaths} is in the Nix store, which every local user can read; give the path of a root-owned file outside the store as a string (e.g. \"/run/secrets/api-key\")";
      }
      {
        assertion = relPaths == [ ];
        message = "${where}.credentials: ${toString relPaths} is not an absolute path";
      }
      {
        assertion = badNames == [ ];
        message =
          "${where}: invalid credential name(s) ${builtins.toJSON badNames}: "
          + (
            if vm.allowAnyName then
              "systemd needs 1-255 printable ASCII bytes without '/', ':' or '=', not '.' or '..'"
            else
              "use [A-Za-z0-9_.@+-] (or set allowAnyName)"
          );
      }
      {
        assertion = both == [ ];
        message = "${where}: ${builtins.toJSON both} in both credentials and settings";
      }
      {
        assertion = vm.credentials != { } || vm.settings != { } || vm.oemStrings != [ ];
        message = "${where}: nothing to deliver (credentials, settings and oemStrings are empty)";
      }
      {
        assertion = vm.report.enable -> vm.manifest;
        message = "${where}: report.enable needs manifest = true (the listener verifies against it)";
      }
      {
        assertion = vm.report.enable -> vm.report.socket != null;
        message = "${where}.report.socket: set it to <hybrid vsock socket>_<port> for cloud-hypervisor";
      }
    ]
    ++ optionals (vm.hypervisor == "qemu") [
      {
        assertion = vm.qemu.command != [ ];
        message = "${where}.qemu.command: give the QEMU command line; vmcreds-host runs it with the -smbios arguments appended";
      }
      {
        assertion = !isMicrovmUnit vm.unit;
        message = "${where}: microvm.nix's QEMU runner builds its own command line (and defaults to -M microvm, which has no SMBIOS); use microvm.credentialFiles (fw_cfg) there, or give qemu.command and a unit of your own";
      }
      {
        assertion = !lib.any isMicrovmMachine (qemuMachineValues vm.qemu.command);
        message = "${where}.qemu.command: QEMU's microvm machine type has no SMBIOS, so the guest would get no credentials; use -machine q35 (or pc)";
      }
    ]
    ++ optionals isFwCfg (
      [
        {
          assertion = badFwCfgNames == [ ];
          message = "${where}: cloudHypervisor.mode = \"fw-cfg\": ${builtins.toJSON badFwCfgNames} cannot be an fw_cfg file name (opt/io.systemd.credentials/NAME: at most 28 bytes of [A-Za-z0-9_.@+%-])";
        }
        {
          assertion = vm.cloudHypervisor.platformKeys == { };
          message = "${where}.cloudHypervisor.platformKeys: mode \"fw-cfg\" leaves --platform to microvm.nix's runner (microvm.cloud-hypervisor.extraArgs)";
        }
        {
          assertion = vm.oemStrings == [ ] || lib.all (lib.hasPrefix "io.systemd.credential:") vm.oemStrings;
          message = "${where}.oemStrings: mode \"fw-cfg\" carries credentials only (io.systemd.credential:NAME=VALUE)";
        }
        {
          assertion = isMicrovmUnit vm.unit;
          message = "${where}: cloudHypervisor.mode = \"fw-cfg\" works through microvm.nix's runner: unit must be microvm@<name>.service";
        }
      ]
      ++ optionals (hasMicrovm && config.microvm.vms ? ${name}) [
        {
          assertion = guestRuns == "${vm.cloudHypervisor.fwCfg.script}";
          message = "${where}: microvm.vms.${name}'s runner does not run ${vm.cloudHypervisor.fwCfg.script} (its microvm.extraArgsScript is ${builtins.toJSON guestRuns}): import services.vmcreds.vms.${name}.cloudHypervisor.microvmModule into the microvm's configuration (done for you with microvm.vms.${name}.config)";
        }
      ]
    )
    ++ optionals (vm.hypervisor == "cloud-hypervisor" && vm.cloudHypervisor.mode == "api") [
      {
        assertion = vm.cloudHypervisor.vmConfig != null;
        message = "${where}.cloudHypervisor.vmConfig: mode \"api\" needs the VmConfig JSON to send with vm.create";
      }
      {
        assertion = !isMicrovmUnit vm.unit;
        message = "${where}.cloudHypervisor.mode = \"api\": microvm.nix's runner boots cloud-hypervisor from its command line, so it cannot take vm.create; use mode \"env\" with microvm.nix, or a unit of your own";
      }
    ];

  # The units of one VM, as { services; sockets; tmpfiles; } so that the
  # module's config keeps static top-level attributes (no recursion through
  # services.vmcreds.vms).
  vmUnits =
    name: vm:
    let
      unitName = serviceAttr vm.unit;
      ch = vm.cloudHypervisor;
      isQemu = vm.hypervisor == "qemu";
      isApi = vm.hypervisor == "cloud-hypervisor" && ch.mode == "api";
      isEnv = vm.hypervisor == "cloud-hypervisor" && ch.mode == "env";
      isFwCfg = vm.hypervisor == "cloud-hypervisor" && ch.mode == "fw-cfg";
      hostCommand = [ hostBin ] ++ vm.hostArgs;
      # The report socket: systemd listens from boot, so the hypervisor can
      # always connect (QEMU at start-up, cloud-hypervisor's hybrid vsock when
      # the guest reports), and the first connection starts
      # vmcreds-collect-<name>.service with the listener as fd 3. By then the
      # VM's start has written the manifest, which the service reads. One
      # report per connection; a restarted VM connects again.
      collectSockets = lib.optionalAttrs vm.report.enable {
        "vmcreds-collect-${name}" = {
          description = "vmcreds: report socket of VM ${name}";
          wantedBy = [ "sockets.target" ];
          listenStreams = [ vm.report.socket ];
          socketConfig = {
            SocketUser = vm.user;
            SocketGroup = vm.group;
            SocketMode = "0600";
            DirectoryMode = "0700";
          };
        };
      };
      reportDeps = optional vm.report.enable "vmcreds-collect-${name}.socket";
      # Hardening shared by the units that only run vmcreds-host.
      confined = {
        User = vm.user;
        Group = vm.group;
        UMask = "0077";
        NoNewPrivileges = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        ReadWritePaths = [ vm.manifestDir ];
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectControlGroups = true;
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        CapabilityBoundingSet = "";
      };
    in
    {
      tmpfiles.${vm.manifestDir}.d = {
        inherit (vm) user group;
        mode = "0700";
      };

      sockets = collectSockets // lib.optionalAttrs isApi {
        # Socket activation: the API socket exists before cloud-hypervisor
        # runs, so ExecStartPost can connect at once; cloud-hypervisor takes the
        # bound listener as fd 3.
        ${unitName} = {
          description = "API socket of VM ${name} (cloud-hypervisor)";
          wantedBy = [ "sockets.target" ];
          listenStreams = [ ch.apiSocket ];
          socketConfig = {
            SocketUser = vm.user;
            SocketGroup = vm.group;
            SocketMode = "0600";
            DirectoryMode = "0700";
          };
        };
      };


      services =
        lib.optionalAttrs isQemu {
          ${unitName} = {
            description = "VM ${name} (QEMU, credentials by vmcreds)";
            wantedBy = [ "multi-user.target" ];
            # Like microvm.nix: a switch does not reboot the VM behind its back;
            # new credentials arrive with the next start.
            restartIfChanged = false;
            requires = reportDeps;
            after = [ "network.target" ] ++ reportDeps;
            serviceConfig = {
              ExecStart = utils.escapeSystemdExecArgs (
                hostCommand ++ [ "--" ] ++ vm.qemu.command ++ vm.qemu.reportArgs
              );
              LoadCredential = loadCredentials vm;
              User = vm.user;
              Group = vm.group;
              UMask = "0077";
            };
          };
        }
        // lib.optionalAttrs isApi {
          ${unitName} = {
            description = "VM ${name} (cloud-hypervisor, credentials by vmcreds over the API)";
            wantedBy = [ "multi-user.target" ];
            restartIfChanged = false;
            after = [ "network.target" ] ++ reportDeps;
            requires = [ "${unitName}.socket" ] ++ reportDeps;
            serviceConfig = {
              ExecStart = utils.escapeSystemdExecArgs (
                [
                  (lib.getExe' ch.package "cloud-hypervisor")
                  "--api-socket"
                  "fd=3"
                ]
                ++ ch.extraArgs
              );
              # vm.create (with the OEM strings) and vm.boot; the unit fails, and
              # cloud-hypervisor is stopped, if either is refused.
              ExecStartPost = utils.escapeSystemdExecArgs hostCommand;
              LoadCredential = loadCredentials vm;
              User = vm.user;
              Group = vm.group;
              UMask = "0077";
            };
          };
        }
        // lib.optionalAttrs isEnv {
          "vmcreds-prepare-${name}" = {
            description = "vmcreds: cloud-hypervisor --platform value for VM ${name}";
            before = [ vm.unit ];
            # Restarted with the VM, so every start gets a fresh manifest nonce.
            partOf = [ vm.unit ];
            serviceConfig = confined // {
              Type = "oneshot";
              RemainAfterExit = true;
              ExecStart = utils.escapeSystemdExecArgs hostCommand;
              # Opened by systemd under UMask=0077: 0600.
              StandardOutput = "truncate:${ch.envFile}";
              LoadCredential = loadCredentials vm;
              RestrictAddressFamilies = "none";
              PrivateNetwork = true;
            };
          };
          ${unitName} = {
            # A drop-in (microvm@<name>.service.d/overrides.conf): with the default
            # strategy NixOS would write a whole microvm@<name>.service without
            # ExecStart, shadowing microvm.nix's template.
            overrideStrategy = "asDropin";
            requires = [ "vmcreds-prepare-${name}.service" ] ++ reportDeps;
            after = [ "vmcreds-prepare-${name}.service" ] ++ reportDeps;
            # Keep the template's environment: an empty path emits no PATH=.
            path = lib.mkForce [ ];
            serviceConfig.EnvironmentFile = ch.envFile;
          };
        }
        // lib.optionalAttrs isFwCfg {
          ${unitName} = {
            # A drop-in on microvm.nix's template instance (see mode env).
            overrideStrategy = "asDropin";
            requires = reportDeps;
            after = reportDeps;
            path = lib.mkForce [ ];
            serviceConfig = {
              # For microvm-run's extraArgsScript: vmcreds-host reads
              # $CREDENTIALS_DIRECTORY and writes the 0400 files, in a fresh 0700
              # directory, under this RuntimeDirectory, which systemd creates
              # for the unit's user at every start and removes when it stops
              # (also between restarts), after cloud-hypervisor has exited.
              LoadCredential = loadCredentials vm;
              RuntimeDirectory = lib.removePrefix "/run/" ch.fwCfg.runtimeDir;
              RuntimeDirectoryMode = "0700";
            };
          };
        }
        // lib.optionalAttrs vm.report.enable {
          "vmcreds-collect-${name}" = {
            description = "vmcreds: verify the credential report of VM ${name}";
            # Started by vmcreds-collect-<name>.socket.
            serviceConfig = confined // {
              Type = "exec";
              ExecStart = utils.escapeSystemdExecArgs (
                [
                  hostBin
                  "collect"
                  "--listen"
                  "unix:${vm.report.socket}"
                  "--manifest"
                  vm.manifestFile
                  "--report-out"
                  vm.report.file
                ]
                ++ optionals (vm.report.timeout != null) [
                  "--timeout"
                  (toString vm.report.timeout)
                ]
              );
              RestrictAddressFamilies = "AF_UNIX";
              PrivateNetwork = true;
            };
          };
        };
    };

  allUnits = mapAttrsToList vmUnits enabledVms;
  vmUnitNames = mapAttrsToList (_: vm: vm.unit) enabledVms;
in
{
  imports = [ ./common.nix ];

  options.services.vmcreds.vms = mkOption {
    type = types.attrsOf (types.submodule vmModule);
    default = { };
    example = literalExpression ''
      {
        vm1 = {
          hypervisor = "cloud-hypervisor";
          cloudHypervisor.mode = "env"; # microvm.nix with a MICROVM_PLATFORM_OPS runner
          credentials = {
            API_KEY = "/run/secrets/host-api-key";
            DB_PASSWORD = "/run/secrets/host-db-password";
          };
          settings.ENVIRONMENT = "production";
        };
      }
    '';
    description = ''
      VMs that get SMBIOS Type 11 credentials from this host, by name. The
      secrets never enter the Nix store, a shell variable or (except with
      cloud-hypervisor mode `env`) a command line.
    '';
  };

  config = mkIf (enabledVms != { }) ({
    assertions = concatLists (mapAttrsToList vmAssertions enabledVms) ++ [
      {
        assertion = lib.allUnique vmUnitNames;
        message = "services.vmcreds.vms: two VMs share a unit: ${builtins.toJSON vmUnitNames}";
      }
    ];
    warnings = concatLists (
      mapAttrsToList (
        name: vm:
        optional (vm.hypervisor == "cloud-hypervisor" && vm.cloudHypervisor.mode == "env")
          "services.vmcreds.vms.${name}: cloudHypervisor.mode = \"env\" puts the credentials on cloud-hypervisor's command line, readable by every local user; mode \"api\" keeps them off argv"
      ) enabledVms
    );

    systemd.services = mkMerge (map (u: u.services) allUnits);
    systemd.sockets = mkMerge (map (u: u.sockets) allUnits);
    systemd.tmpfiles.settings."10-vmcreds" = mkMerge (map (u: u.tmpfiles) allUnits);
  }
  // lib.optionalAttrs hasMicrovm {
    # Mode fw-cfg with microvm.nix's host module: the microvm's runner gets
    # the package and the extraArgsScript (applied to VMs declared with
    # `config`; the assertion above catches the others).
    microvm.vms = mkMerge (
      mapAttrsToList (
        name: vm:
        mkIf
          (
            vm.hypervisor == "cloud-hypervisor"
            && vm.cloudHypervisor.mode == "fw-cfg"
            && vm.cloudHypervisor.addToMicrovm
          )
          {
            ${name}.extraModules = [ vm.cloudHypervisor.microvmModule ];
          }
      ) enabledVms
    );
  });
}
