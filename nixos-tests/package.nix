# The vmcreds package: both binaries, built from the workspace's Cargo.lock.
#
#   pkgs.callPackage ./package.nix { }                                  # vmcreds-host + vmcreds-guest
#   pkgs.pkgsStatic.callPackage ./package.nix { crates = [ "vmcreds-guest" ]; }
#                                                                       # static musl guest binary
{
  lib,
  rustPlatform,
  # Workspace packages to build and test; each contributes its binary.
  crates ? [
    "vmcreds-host"
    "vmcreds-guest"
  ],
}:

let
  root = ../.;
  workspace = lib.importTOML (root + "/Cargo.toml");
  packageFlags = lib.concatMap (crate: [
    "--package"
    crate
  ]) crates;
in
rustPlatform.buildRustPackage {
  pname = if crates == [ "vmcreds-guest" ] then "vmcreds-guest" else "vmcreds";
  inherit (workspace.workspace.package) version;

  # The repository without its Nix side and build outputs: cargo needs every
  # workspace member present (even those not built, like xtask), and leaving
  # out nixos-tests/ and the flake keeps the package hash stable when only
  # the Nix code changes.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.difference root (
      lib.fileset.unions (
        map (p: lib.fileset.maybeMissing (root + p)) [
          "/.git"
          "/.ci"
          "/flake.nix"
          "/flake.lock"
          "/nixos-tests"
          "/target"
          "/result"
          "/fuzz/target"
          "/fuzz/artifacts"
        ]
      )
    );
  };

  cargoLock.lockFile = root + "/Cargo.lock";

  cargoBuildFlags = packageFlags;
  # The common crate's tests run too: it holds the format that both binaries share.
  cargoTestFlags = packageFlags ++ lib.optionals (crates != [ "vmcreds-guest" ]) [
    "--package"
    "vmcreds-common"
  ];

  meta = {
    description = "Deliver secrets to VMs as SMBIOS Type 11 systemd credentials and verify that they arrived whole";
    homepage = workspace.workspace.package.repository;
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = if crates == [ "vmcreds-guest" ] then "vmcreds-guest" else "vmcreds-host";
    platforms = lib.platforms.linux;
  };
}
