{
  description = "vmcreds: secrets into VMs as SMBIOS Type 11 systemd credentials, verified on arrival";

  # nixpkgs only. The NixOS tests need QEMU >= 10.0 on the test host
  # (`-smbios type=11,path=`) and systemd >= 252 in the guest, which
  # nixos-unstable has.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      # SMBIOS Type 11 credentials reach a guest on x86_64 only (QEMU builds
      # SMBIOS tables on pc/q35, cloud-hypervisor and crosvm on x86_64 only),
      # so the flake offers x86_64-linux.
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};

      callTest = file: pkgs.testers.runNixOSTest (import file { inherit self; });
    in
    {
      packages.${system} = {
        default = self.packages.${system}.vmcreds;
        vmcreds = pkgs.callPackage ./nixos-tests/package.nix { };
        vmcreds-guest-static = pkgs.pkgsStatic.callPackage ./nixos-tests/package.nix {
          crates = [ "vmcreds-guest" ];
        };
      };

      overlays.default = final: _prev: {
        vmcreds = final.callPackage ./nixos-tests/package.nix { };
      };

      # Each module imports nixos-tests/modules/common.nix, whose
      # services.vmcreds.package defaults to pkgs.vmcreds (the overlay) or, without
      # the overlay, to the package built from this repository.
      nixosModules = {
        host = ./nixos-tests/modules/host.nix;
        guest = ./nixos-tests/modules/guest.nix;
        # Both: a NixOS host can itself be a guest of another host.
        default = {
          imports = [
            self.nixosModules.host
            self.nixosModules.guest
          ];
        };
      };

      checks.${system} = {
        package = self.packages.${system}.default;
        qemu-credentials = callTest ./nixos-tests/tests/qemu-credentials.nix;
        strict-failure = callTest ./nixos-tests/tests/strict-failure.nix;
        systemd-initrd = callTest ./nixos-tests/tests/systemd-initrd.nix;
        host-units = callTest ./nixos-tests/tests/host-units.nix;
        module-assertions = import ./nixos-tests/tests/module-assertions.nix { inherit self pkgs; };
      };

      # nixos-unstable: nixfmt is the RFC 166 formatter.
      formatter.${system} = pkgs.nixfmt;
    };
}
