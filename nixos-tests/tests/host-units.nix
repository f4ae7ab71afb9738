# The host module's systemd side, on a NixOS host, without booting a nested
# guest: stand-ins take the hypervisors' place and record what they were given.
#
# - vm-fake.service (hypervisor = "qemu"): the module's unit runs
#   `vmcreds-host qemu … -- fake-qemu -machine q35 …`; fake-qemu decodes each
#   `-smbios type=11,path=/dev/fd/N` it receives and keeps only a digest, so the
#   test can check that LoadCredential= and vmcreds-host delivered the bytes of
#   the root-only files, and that no secret was on argv.
# - microvm@vm2.service (cloud-hypervisor, mode "env"): a stand-in for
#   microvm.nix's microvm@ template; the module adds a drop-in (not a whole
#   unit, which would shadow the template) that reads MICROVM_PLATFORM_OPS from
#   the file vmcreds-prepare-vm2.service wrote.
# - report.enable: a new manifest starts vmcreds-collect-fake.service.
{ self }:

{ lib, ... }:

let
  credentials = {
    API_KEY = "/run/secrets/host-api-key";
    DB_PASSWORD = "/run/secrets/host-db-password";
    JWT_SECRET = "/run/secrets/host-jwt-secret";
  };
  settings = {
    ENVIRONMENT = "test";
    CLUSTER = "nixos-test";
  };
in
{
  name = "vmcreds-host-units";

  nodes.host =
    { pkgs, ... }:
    let
      # Stand-in for QEMU: for each Type 11 OEM string file, the credential
      # name and the sha256 of the decoded value; then its argv; then it idles
      # like a running VM.
      fakeQemu = pkgs.writeShellScript "fake-qemu" ''
        set -eu
        out=/run/fake-qemu
        mkdir -p "$out"
        prev=
        for arg in "$@"; do
          if [ "$prev" = -smbios ]; then
            case "$arg" in
              type=11,path=*)
                file=''${arg#type=11,path=}
                file=''${file//,,/,}
                string=$(cat "$file")
                name=''${string#io.systemd.credential.binary:}
                name=''${name%%=*}
                printf '%s' "''${string#*=}" | base64 -d | sha256sum | cut -d' ' -f1 >"$out/$name.sha256"
                ;;
            esac
          fi
          prev=$arg
        done
        printf '%s\0' "$@" >"$out/argv"
        exec sleep infinity
      '';
      # Stand-in for microvm.nix's runner, patched to read MICROVM_PLATFORM_OPS.
      fakeRunner = pkgs.writeShellScript "fake-microvm-run" ''
        set -eu
        test -n "''${MICROVM_PLATFORM_OPS:-}"
        printf '%s' "$MICROVM_PLATFORM_OPS" >"/run/fake-microvm/$1"
        exec sleep infinity
      '';
    in
    {
      imports = [ self.nixosModules.host ];
      environment.systemPackages = [ pkgs.socat ];

      services.vmcreds.vms = {
        fake = {
          hypervisor = "qemu";
          inherit credentials settings;
          report.enable = true;
          qemu.command = [
            "${fakeQemu}"
            "-machine"
            "q35"
            "-nographic"
          ];
        };
        vm2 = {
          hypervisor = "cloud-hypervisor";
          cloudHypervisor.mode = "env";
          inherit credentials settings;
          oemStrings = [ "io.systemd.credential:vmm.notify_socket=vsock-stream:2:8888" ];
        };
      };

      # The test script writes the secrets first, then starts the VMs.
      systemd.services.vm-fake.wantedBy = lib.mkForce [ ];

      # What microvm.nix provides: the user and the template unit.
      users.users.microvm = {
        isSystemUser = true;
        group = "kvm";
      };
      systemd.tmpfiles.rules = [ "d /run/fake-microvm 0700 microvm kvm -" ];
      systemd.services."microvm@" = {
        description = "stand-in for microvm.nix's MicroVM '%i'";
        serviceConfig = {
          ExecStart = "${fakeRunner} %i";
          User = "microvm";
          Group = "kvm";
        };
      };
    };

  testScript = ''
    names = ["API_KEY", "DB_PASSWORD", "JWT_SECRET"]
    files = {
        "API_KEY": "/run/secrets/host-api-key",
        "DB_PASSWORD": "/run/secrets/host-db-password",
        "JWT_SECRET": "/run/secrets/host-jwt-secret",
    }

    host.start()
    host.wait_for_unit("multi-user.target")

    # Secrets as sops-nix or agenix leave them: root-only files. Generated in
    # the VM, so their bytes never pass through the test log.
    host.succeed("install -d -m 0700 /run/secrets")
    for name, size in [("API_KEY", 32), ("DB_PASSWORD", 32), ("JWT_SECRET", 64)]:
        host.succeed(
            f"head -c {size} /dev/urandom | base64 -w0 > {files[name]}",
            f"chmod 0400 {files[name]}",
        )

    def sha(path):
        return host.succeed(f"sha256sum {path}").split()[0]

    def assert_secrets_absent(path):
        # grep -f: the patterns come from the files, never from argv.
        for name in names:
            host.fail(f"grep -aqF -f {files[name]} {path}")
            host.succeed(f"base64 -w0 {files[name]} > /tmp/pattern")
            host.fail(f"grep -aqF -f /tmp/pattern {path}")

    with subtest("qemu: the module's unit loads the files with LoadCredential="):
        unit = host.succeed("systemctl cat vm-fake.service")
        for name in names:
            t.assertIn(f"LoadCredential={name}:{files[name]}", unit)
        t.assertIn("vmcreds-host", unit)
        host.succeed("systemctl start vm-fake.service")
        host.wait_for_file("/run/fake-qemu/argv")

    with subtest("qemu: every credential reached QEMU whole, through files"):
        for name in names:
            t.assertEqual(
                host.succeed(f"cat /run/fake-qemu/{name}.sha256").strip(), sha(files[name])
            )
        for name, value in [("ENVIRONMENT", "test"), ("CLUSTER", "nixos-test")]:
            t.assertEqual(
                host.succeed(f"cat /run/fake-qemu/{name}.sha256").strip(),
                host.succeed(f"printf %s {value} | sha256sum").split()[0],
            )
        host.succeed("test -e /run/fake-qemu/vmcreds.manifest.sha256")

    with subtest("qemu: no secret on QEMU's argv; the files are unchanged"):
        argv = host.succeed("tr '\\0' ' ' < /run/fake-qemu/argv")
        t.assertIn("type=11,path=", argv)
        assert_secrets_absent("/run/fake-qemu/argv")
        for name in names:
            t.assertEqual(host.succeed(f"stat -c '%a %U' {files[name]}").strip(), "400 root")

    with subtest("report: systemd listens; a connection starts the listener"):
        host.succeed("test -s /run/vmcreds/fake/manifest.json")
        assert_secrets_absent("/run/vmcreds/fake/manifest.json")
        host.succeed("test -S /run/vmcreds/fake/report.sock")
        t.assertEqual(
            host.succeed("stat -c '%a %U' /run/vmcreds/fake/report.sock").strip(), "600 root"
        )
        t.assertIn("vmcreds-collect-fake.socket", host.succeed("systemctl show -p Requires vm-fake.service"))
        # The stand-in QEMU does not connect; a client that sends something
        # that is not a report must start the listener and make it fail.
        host.succeed("echo '{}' | socat - UNIX-CONNECT:/run/vmcreds/fake/report.sock")
        host.wait_until_succeeds("systemctl is-failed vmcreds-collect-fake.service")
        host.succeed("systemctl is-active vmcreds-collect-fake.socket")
        # It used systemd's listener (fd 3) rather than trying to bind its own.
        journal = host.succeed("journalctl -u vmcreds-collect-fake.service --no-pager -o cat")
        t.assertNotIn("another process is listening", journal)
        host.succeed("test -S /run/vmcreds/fake/report.sock")

    with subtest("microvm.nix, env mode: a drop-in, not a unit shadowing the template"):
        unit = host.succeed("systemctl cat microvm@vm2.service")
        t.assertIn("microvm@vm2.service.d/overrides.conf", unit)
        t.assertIn("stand-in for microvm.nix", unit)
        host.succeed("systemctl start microvm@vm2.service")
        host.wait_for_unit("microvm@vm2.service")
        host.wait_for_file("/run/fake-microvm/vm2")
        t.assertEqual(
            host.succeed("stat -c '%a' /run/vmcreds/vm2/platform.env").strip(), "600"
        )

    with subtest("microvm.nix, env mode: one --platform value with every string"):
        ops = "/run/fake-microvm/vm2"
        host.succeed(f"grep -q '^oem_strings=\\[' {ops}")
        host.succeed(
            f"grep -qF 'io.systemd.credential:vmm.notify_socket=vsock-stream:2:8888' {ops}"
        )
        for name in names:
            host.succeed(
                f"{{ printf %s 'io.systemd.credential.binary:{name}='; base64 -w0 {files[name]}; }} > /tmp/pattern",
                f"grep -qF -f /tmp/pattern {ops}",
            )
        host.succeed(f"grep -qF 'io.systemd.credential.binary:vmcreds.manifest=' {ops}")
        for name in names:
            host.fail(f"grep -aqF -f {files[name]} {ops}")

    with subtest("microvm.nix, env mode: a restart brings a fresh manifest"):
        before = sha("/run/vmcreds/vm2/manifest.json")
        host.succeed("systemctl restart microvm@vm2.service")
        host.wait_for_unit("microvm@vm2.service")
        t.assertNotEqual(sha("/run/vmcreds/vm2/manifest.json"), before)
  '';
}
