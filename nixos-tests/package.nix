# The vmcreds package: both binaries, built from the workspace's Cargo.lock.
#
#   pkgs.callPackage ./package.nix { }                                  # vmcreds-host + vmcreds-guest
#   pkgs.pkgsStatic.callPackage ./package.nix { crates = [ "vmcreds-guest" ]; }
#                                                                       # static musl guest binary
{
  lib,
  rustPlatform,
  installShellFiles,
  # Workspace packages to build and test; each contributes its binary.
  crates ? [
    "vmcreds-host"
    "vmcreds-guest"
  ],
}:

let
  root = ../.;
  workspace = lib.importTOML (root + "/Cargo.toml");
  withDocs = crates != [ "vmcreds-guest" ];
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

  # Man pages (vmcreds-host.1, vmcreds-host-qemu.1, …) and bash/zsh/fish
  # completions, generated from the clap definitions by `cargo xtask man`
  # (the static guest-only build leaves them out).
  nativeBuildInputs = lib.optionals withDocs [ installShellFiles ];
  postInstall = lib.optionalString withDocs ''
    cargo run --offline --release -p xtask -- man --out "$TMPDIR/vmcreds-docs"
    installManPage "$TMPDIR"/vmcreds-docs/man/man1/*.1
    for bin in vmcreds-host vmcreds-guest; do
      installShellCompletion --cmd "$bin" \
        --bash "$TMPDIR/vmcreds-docs/completions/bash/$bin.bash" \
        --zsh "$TMPDIR/vmcreds-docs/completions/zsh/_$bin" \
        --fish "$TMPDIR/vmcreds-docs/completions/fish/$bin.fish"
    done
  '';

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
