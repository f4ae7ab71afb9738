# Stand-in packages for evaluating the modules without nixpkgs: each is an
# attribute set that the module system takes for a derivation (type =
# "derivation", an outPath in the store), named after the package. Only their
# store paths, names and the attributes the modules override are used.
# Shared by the real-lib and the stand-in evaluation (part of the golden
# outputs' source hash).
let
  b = builtins;
  storePath =
    name: content: "${b.storeDir}/${b.substring 0 32 (b.hashString "sha256" "${name}\n${content}")}-${name}";
  fake =
    attrs:
    let
      self = attrs // {
        type = "derivation";
        outPath = storePath attrs.name (attrs.text or "");
        drvPath = storePath "${attrs.name}.drv" (attrs.text or "");
        # overrideAttrs: the new attributes are part of the name's hash, so an
        # override gives another store path, as it would in nixpkgs.
        overrideAttrs =
          f:
          let
            changed = f attrs;
          in
          fake (
            attrs
            // changed
            // {
              name = "${attrs.pname or attrs.name}-${b.substring 0 8 (b.hashString "sha256" (b.toJSON changed))}";
            }
          );
      };
    in
    self;
  package = name: fake {
    inherit name;
    pname = name;
  };
  script = name: text: fake { inherit name text; };
in
{
  vmcreds = package "vmcreds";
  cloud-hypervisor = package "cloud-hypervisor" // {
    cargoBuildFeatures = "";
  };
  qemu_kvm = package "qemu";
  coreutils = package "coreutils";
  findutils = package "findutils";
  gnugrep = package "gnugrep";
  gnused = package "gnused";
  systemd = package "systemd";
  git = package "git";
  jq = package "jq";
  nix = package "nix";
  openssh = package "openssh";
  qemu-utils = package "qemu-utils";
  runtimeShell = "${package "bash"}/bin/bash";
  writeText = name: text: script name text;
  writeShellScript = name: text: script name text;
  writeShellScriptBin = name: text: script name text;
  callPackage = _: _: package "called-package";
}
