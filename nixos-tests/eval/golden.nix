# What check.sh compares with the golden outputs (nixos-tests/golden/): for
# every configuration of tests/module-configs.nix and every nix block of the
# README's NixOS section, evaluated with `lib` (nixpkgs' real lib, or the
# stand-in eval/lib.nix) and eval/nixos-options.nix:
#   files."<case>/result.json"   failed assertions, warnings, hostArgs, the
#                                guest's initrd modules and packages, the
#                                option names the NixOS manual would list
#   files."<case>/units/<file>"  every rendered unit (when no assertion failed)
#   files."<case>/scripts/<vm>"  mode fw-cfg: the microvm's extraArgsScript
# plus `cases` (module-cases.nix's booleans) and, with microvm.nix given
# (`microvm` = its source), the fw-cfg and env drop-ins evaluated together
# with microvm.nix's own host module.
{
  lib,
  readmeBlocks ? [ ],
  microvm ? null,
}:

let
  b = builtins;
  pkgs = import ./pkgs.nix;
  utils = import ./utils.nix;
  storePath = "${b.storeDir}/00000000000000000000000000000000-not-a-secret";

  evalWith =
    modules:
    lib.evalModules {
      modules = [ ./nixos-options.nix ] ++ modules;
      specialArgs = { inherit pkgs utils; };
    };
  host = ../modules/host.nix;
  guest = ../modules/guest.nix;

  configs = import ../tests/module-configs.nix { inherit storePath; };

  json = v: b.toJSON v + "\n";

  # The names of the options the NixOS manual would document below
  # services.vmcreds, with every default rendered (a default that needs a
  # definition must have a defaultText, or the manual's build throws).
  docOptions =
    options:
    let
      docs = b.filter (
        o:
        lib.hasPrefix "services.vmcreds." o.name && !(lib.hasInfix "_module" o.name) && (o.visible or true) != false
      ) (lib.optionAttrSetToDocList options);
    in
    b.deepSeq (map (o: o.default or null) docs) (b.sort b.lessThan (map (o: o.name) docs));

  outputs =
    name: evaluated:
    let
      cfg = evaluated.config;
      failed = map (a: a.message) (b.filter (a: !a.assertion) cfg.assertions);
      vms = cfg.services.vmcreds.vms or { };
      fwCfgVms = lib.filterAttrs (
        _: vm: vm.hypervisor == "cloud-hypervisor" && vm.cloudHypervisor.mode == "fw-cfg"
      ) vms;
      result = {
        assertions = failed;
        inherit (cfg) warnings;
        hostArgs = b.mapAttrs (_: vm: vm.hostArgs) vms;
        credentials = b.mapAttrs (_: vm: vm.credentials) vms;
        initrd = {
          inherit (cfg.boot.initrd) availableKernelModules kernelModules;
        };
        systemPackages = map (p: p.name) cfg.environment.systemPackages;
        udevRules = cfg.services.udev.extraRules;
        microvm = b.mapAttrs (_: vm: {
          package = vm.cloudHypervisor.fwCfg.package.name;
          extraArgsScript = vm.cloudHypervisor.microvmModule.microvm.extraArgsScript;
        }) fwCfgVms;
        options = docOptions evaluated.options;
      };
      units = if failed == [ ] then import ./render.nix { inherit lib; inherit (evaluated) config; } else { };
    in
    {
      "${name}/result.json" = json result;
    }
    // lib.mapAttrs' (file: text: lib.nameValuePair "${name}/units/${file}" text) units
    // lib.mapAttrs' (
      vm: v: lib.nameValuePair "${name}/scripts/vmcreds-fw-cfg-${vm}" v.cloudHypervisor.fwCfg.script.text
    ) fwCfgVms;

  configOutputs = lib.concatMapAttrs (
    name: c:
    outputs name (
      if c ? host then
        evalWith [
          host
          c.host
        ]
      else
        evalWith [
          guest
          c.guest
        ]
    )
  ) configs;

  # README blocks: whole NixOS modules; both vmcreds modules imported, as
  # nixosModules.default does.
  readmeOutputs = b.foldl' (x: y: x // y) { } (
    lib.imap1 (
      i: file:
      outputs "readme-${lib.fixedWidthNumber 2 i}" (evalWith [
        host
        guest
        file
      ])
    ) readmeBlocks
  );

  microvmOutputs =
    if microvm == null then
      { }
    else
      import ./microvm.nix {
        inherit
          lib
          pkgs
          utils
          configs
          outputs
          evalWith
          microvm
          host
          ;
      };

  cases = import ../tests/module-cases.nix {
    inherit lib storePath;
    evalHost = c: (evalWith [ host c ]).config;
    evalGuest = c: (evalWith [ guest c ]).config;
  };
  failedCases = b.attrNames (lib.filterAttrs (_: ok: !ok) cases);
in
{
  files = configOutputs // readmeOutputs // microvmOutputs;
  casesSummary =
    "${toString (b.length (b.attrNames cases) - b.length failedCases)} passed, ${toString (b.length failedCases)} failed"
    + lib.optionalString (failedCases != [ ]) ": ${b.concatStringsSep ", " failedCases}";
  casesOk = failedCases == [ ];
}
