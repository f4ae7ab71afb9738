# Unit files from an evaluated configuration, as NixOS writes them
# (nixos/lib/systemd-lib.nix: attrsToSection, commonUnitText, serviceToUnit,
# socketToUnit; generateUnits for the file names), reconstructed: keys in
# attribute-name order, a list value as one `Key=` line per element, true/false
# as "true"/"false", other values with toString; `environment` as
# Environment="NAME=VALUE" (JSON-quoted); X-RestartIfChanged=false; wantedBy as
# [Install] WantedBy=. A unit with overrideStrategy = "asDropin" is written as
# <unit>.d/overrides.conf. Also the tmpfiles.d file systemd.tmpfiles.settings
# makes (nixos/modules/system/boot/systemd/tmpfiles.nix).
#
# { lib, config } -> { "<file name>" = "<text>"; }
{ lib, config }:

let
  b = builtins;
  toOption =
    x:
    if x == true then
      "true"
    else if x == false then
      "false"
    else
      toString x;
  attrsToSection =
    as:
    b.concatStringsSep "" (
      b.concatMap (
        name:
        let
          value = as.${name};
        in
        map (x: "${name}=${toOption x}\n") (if b.isList value then value else [ value ])
      ) (b.attrNames as)
    );
  commonUnitText =
    def: lines:
    "[Unit]\n${attrsToSection def.unitConfig}\n"
    + lines
    + (if def.wantedBy != [ ] then "\n[Install]\nWantedBy=${b.concatStringsSep " " def.wantedBy}\n" else "");

  serviceText =
    def:
    let
      env = config.systemd.globalEnvironment // def.environment;
    in
    commonUnitText def (
      "[Service]\n"
      + b.concatStringsSep "" (
        map (n: if env.${n} == null then "" else "Environment=${b.toJSON "${n}=${toString env.${n}}"}\n") (
          b.attrNames env
        )
      )
      + (
        if def.reloadIfChanged then
          "X-ReloadIfChanged=true\n"
        else if !def.restartIfChanged then
          "X-RestartIfChanged=false\n"
        else
          ""
      )
      + (if !def.stopIfChanged then "X-StopIfChanged=false\n" else "")
      + attrsToSection def.serviceConfig
    );

  socketText =
    def:
    commonUnitText def (
      "[Socket]\n${attrsToSection def.socketConfig}\n"
      + b.concatStringsSep "\n" (map (s: "ListenStream=${s}") def.listenStreams)
      + "\n"
      + b.concatStringsSep "\n" (map (s: "ListenDatagram=${s}") def.listenDatagrams)
      + "\n"
    );

  fileName =
    unit: def: if def.overrideStrategy == "asDropin" then "${unit}.d/overrides.conf" else unit;

  render =
    suffix: text: units:
    b.listToAttrs (
      map (
        n:
        let
          def = units.${n};
        in
        {
          name = fileName "${n}.${suffix}" def;
          value = if def.enable then text def else "@/dev/null\n";
        }
      ) (b.attrNames units)
    );

  tmpfiles = b.listToAttrs (
    map (file: {
      name = "tmpfiles.d/${file}.conf";
      value = b.concatStringsSep "" (
        b.concatMap (
          path:
          map (
            type:
            let
              e = config.systemd.tmpfiles.settings.${file}.${path}.${type};
            in
            "${e.type} \"${path}\" ${e.mode} ${e.user} ${e.group} ${e.age} ${e.argument}\n"
          ) (b.attrNames config.systemd.tmpfiles.settings.${file}.${path})
        ) (b.attrNames config.systemd.tmpfiles.settings.${file})
      );
    }) (b.attrNames config.systemd.tmpfiles.settings)
  );
in
render "service" serviceText config.systemd.services
// render "socket" socketText config.systemd.sockets
// render "target" (def: commonUnitText def "") config.systemd.targets
// tmpfiles
