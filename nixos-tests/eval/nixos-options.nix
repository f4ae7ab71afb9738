# A test-only reconstruction of the NixOS options the vmcreds modules write to
# (and read), written from reading NixOS's source (nixos/lib/systemd-lib.nix,
# nixos/lib/systemd-unit-options.nix, nixos/modules/system/boot/systemd.nix,
# nixos/modules/system/boot/systemd/tmpfiles.nix, nixos/modules/misc/assertions.nix),
# not copied from it: the same option types and merge behaviour.
#
# - systemd.services / sockets / targets.<name>: unit submodules whose
#   unitConfig / serviceConfig / socketConfig are `attrsOf unitOption`
#   (definitions that are lists concatenate, a repeated key; other values
#   must agree), list options concatenate (mkBefore/mkAfter order them), and
#   `requires`, `after`, … and `description` become [Unit] keys as NixOS makes
#   them. Services get NixOS's default `path` (coreutils, findutils, gnugrep,
#   gnused, systemd; mkAfter), which becomes `Environment="PATH=…"` unless
#   a definition overrides `path` (the microvm drop-in's mkForce [ ]).
# - assertions, warnings, boot.initrd.*, environment.systemPackages,
#   services.udev.extraRules, systemd.tmpfiles.settings.
#
# It serves both evaluators: nixpkgs' real lib (check.sh with
# VMCREDS_NIXPKGS_LIB, recording the golden outputs) and the stand-in
# (eval/lib.nix, CI), so it uses only what both provide. eval/render.nix
# turns the evaluated units into unit files as NixOS does.
{
  lib,
  pkgs,
  config,
  ...
}:

let
  inherit (lib) mkOption types;
  b = builtins;

  strings = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };
  # NixOS's unitNameType.
  unitName = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";
  unitNames = mkOption {
    type = types.listOf unitName;
    default = [ ];
  };

  # NixOS's unitOption: one key of a [Unit]/[Service]/[Socket] section. List
  # definitions concatenate (a repeated key); all other definitions must be
  # equal.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      if b.isList (b.head defs).value then
        b.concatMap (
          d:
          if b.isList d.value then
            d.value
          else
            b.throw "The definitions for systemd unit options should be either all lists or all non-lists, but for the option ${lib.showOption loc} they are a mix"
        ) defs
      else
        lib.mergeEqualOption loc defs;
  };
  section = mkOption {
    type = types.attrsOf unitOption;
    default = { };
  };

  # A stand-in derivation for the store paths NixOS would build (job scripts,
  # trigger files): named after, and hashed from, what it holds.
  fakeStorePath =
    name: content:
    "${b.storeDir}/${b.substring 0 32 (b.hashString "sha256" "${name}\n${content}")}-${name}";

  commonUnit =
    { name, config, ... }:
    {
      options = {
        enable = mkOption {
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
        description = mkOption {
          type = types.str;
          default = "";
        };
        documentation = strings;
        requires = unitNames;
        wants = unitNames;
        upholds = unitNames;
        after = unitNames;
        before = unitNames;
        bindsTo = unitNames;
        partOf = unitNames;
        conflicts = unitNames;
        requisite = unitNames;
        onFailure = unitNames;
        onSuccess = unitNames;
        wantedBy = unitNames;
        requiredBy = unitNames;
        upheldBy = unitNames;
        aliases = unitNames;
        restartTriggers = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        unitConfig = section;
      };
      # The dependency lists become [Unit] keys (space-separated), as NixOS's
      # unitConfig module writes them.
      config.unitConfig =
        let
          keys = {
            Requires = config.requires;
            Wants = config.wants;
            Upholds = config.upholds;
            After = config.after;
            Before = config.before;
            BindsTo = config.bindsTo;
            PartOf = config.partOf;
            Conflicts = config.conflicts;
            Requisite = config.requisite;
            Documentation = config.documentation;
            OnFailure = config.onFailure;
            OnSuccess = config.onSuccess;
          };
        in
        lib.mkMerge (
          map (k: lib.mkIf (keys.${k} != [ ]) { ${k} = toString keys.${k}; }) (b.attrNames keys)
          ++ [
            (lib.mkIf (config.description != "") { Description = config.description; })
            (lib.mkIf (config.restartTriggers != [ ]) {
              X-Restart-Triggers = fakeStorePath "X-Restart-Triggers-${name}" (
                toString (map toString (lib.flatten config.restartTriggers))
              );
            })
          ]
        );
    };

  jobScript =
    name: text:
    let
      scriptName = b.replaceStrings [ "\\" "@" ] [ "-" "_" ] name;
    in
    "${fakeStorePath "unit-script-${scriptName}" text}/bin/${scriptName}";

  service =
    { name, config, ... }:
    {
      imports = [ commonUnit ];
      options = {
        environment = mkOption {
          type = types.attrsOf (
            types.nullOr (
              types.oneOf [
                types.str
                types.path
                types.package
              ]
            )
          );
          default = { };
        };
        path = mkOption {
          type = types.listOf (
            types.oneOf [
              types.package
              types.str
            ]
          );
          default = [ ];
        };
        serviceConfig = section;
        script = mkOption {
          type = types.lines;
          default = "";
        };
        scriptArgs = mkOption {
          type = types.str;
          default = "";
        };
        preStart = mkOption {
          type = types.lines;
          default = "";
        };
        restartIfChanged = mkOption {
          type = types.bool;
          default = true;
        };
        reloadIfChanged = mkOption {
          type = types.bool;
          default = false;
        };
        stopIfChanged = mkOption {
          type = types.bool;
          default = true;
        };
      };
      config = {
        # NixOS's default PATH for every system service (stage 2).
        path = lib.mkAfter [
          pkgs.coreutils
          pkgs.findutils
          pkgs.gnugrep
          pkgs.gnused
          pkgs.systemd
        ];
        environment.PATH = lib.mkIf (config.path != [ ]) (
          "${lib.makeBinPath config.path}:${lib.makeSearchPathOutput "bin" "sbin" config.path}"
        );
        serviceConfig = lib.mkMerge [
          (lib.mkIf (config.preStart != "") {
            ExecStartPre = [ (jobScript "${name}-pre-start" config.preStart) ];
          })
          (lib.mkIf (config.script != "") {
            ExecStart = "${jobScript "${name}-start" config.script} ${config.scriptArgs}";
          })
        ];
      };
    };

  socket = {
    imports = [ commonUnit ];
    options = {
      listenStreams = strings;
      listenDatagrams = strings;
      socketConfig = section;
    };
  };

  units =
    module:
    mkOption {
      type = types.attrsOf (types.submodule module);
      default = { };
    };

  # systemd.tmpfiles.settings.<file>.<path>.<type> = { mode; user; group; age; argument; }
  tmpfilesEntry =
    { name, ... }:
    {
      options = {
        type = mkOption {
          type = types.str;
          default = name;
          readOnly = true;
        };
        mode = mkOption {
          type = types.str;
          default = "-";
        };
        user = mkOption {
          type = types.str;
          default = "-";
        };
        group = mkOption {
          type = types.str;
          default = "-";
        };
        age = mkOption {
          type = types.str;
          default = "-";
        };
        argument = mkOption {
          type = types.str;
          default = "";
        };
      };
    };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = strings;
    systemd.services = units service;
    systemd.sockets = units socket;
    systemd.targets = units commonUnit;
    systemd.globalEnvironment = mkOption {
      type = types.attrsOf (
        types.nullOr (
          types.oneOf [
            types.str
            types.path
            types.package
          ]
        )
      );
      default = { };
    };
    systemd.tmpfiles.settings = mkOption {
      type = types.attrsOf (types.attrsOf (types.attrsOf (types.submodule tmpfilesEntry)));
      default = { };
    };
    boot.initrd.availableKernelModules = strings;
    boot.initrd.kernelModules = strings;
    boot.kernelModules = strings;
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
