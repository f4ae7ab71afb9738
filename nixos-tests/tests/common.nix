# Shared by the NixOS VM tests.
#
# Why the test VM's own QEMU is wrapped: in a NixOS test the VM under test is
# started by the test driver, not by a systemd unit on a NixOS host, so the
# host module's unit cannot start it. What the tests can do, and do, is run the
# driver's QEMU exactly the way the host module's unit runs QEMU:
#
#   1. evaluate the host module (a throwaway NixOS configuration holding
#      services.vmcreds.vms.machine) and take the arguments it computed:
#      `hostArgs` (vmcreds-host qemu --load API_KEY:API_KEY … --manifest-out …)
#      and `qemu.reportArgs` (the virtio-serial report port);
#   2. install a QEMU package (the test's `qemu.package`) whose
#      qemu-system-x86_64 is a wrapper that execs
#        vmcreds-host <hostArgs> -- <real qemu-system-x86_64> "$@" <reportArgs>
#      in the VM's state directory (the driver runs QEMU there);
#   3. stand in for LoadCredential=: the wrapper sets
#      CREDENTIALS_DIRECTORY=$PWD/credentials, where the test script writes the
#      secret files (0400) before it starts the VM, as nixpkgs'
#      qemu-vm-credentials test writes its host files into machine.state_dir.
#
# So the guest boots with SMBIOS Type 11 strings produced by the real
# vmcreds-host from the real host-module arguments, with no nested
# virtualization (which would boot a second kernel under TCG, very slowly).
# The systemd side of the host module (units, LoadCredential=, drop-ins) is
# exercised separately by host-units.nix.
{
  self,
  lib,
  hostPkgs,
}:

let
  # The host module, evaluated as it would be on a VM host.
  hostVm =
    vmSettings:
    (hostPkgs.nixos {
      imports = [ self.nixosModules.host ];
      services.vmcreds.vms.machine = lib.mkMerge [
        {
          hypervisor = "qemu";
          # Relative paths: the test driver runs QEMU (and so vmcreds-host) with
          # the VM's state directory as working directory.
          manifestDir = "vmcreds";
          # Not run: the test driver supplies the QEMU command line.
          qemu.command = [ "qemu-system-x86_64" ];
        }
        vmSettings
      ];
    }).config.services.vmcreds.vms.machine;

  qemu = hostPkgs.qemu_test;
in
rec {
  vmcreds = hostPkgs.callPackage ../package.nix { };

  # The reference scenario: three secrets loaded by LoadCredential= from files
  # on the host, renamed, plus two settings.
  referenceCredentials = {
    API_KEY = "/run/secrets/host-api-key";
    DB_PASSWORD = "/run/secrets/host-db-password";
    JWT_SECRET = "/run/secrets/host-jwt-secret";
  };
  referenceSettings = {
    ENVIRONMENT = "test";
    CLUSTER = "nixos-test";
  };

  inherit hostVm;

  # A QEMU package whose system emulator runs through vmcreds-host with the
  # host module's arguments for `vm` (see the comment at the top).
  wrapQemu =
    vm:
    let
      wrapper =
        bin:
        hostPkgs.writeShellScript "vmcreds-${bin}" ''
          # Stand-in for LoadCredential=: the test writes the files here.
          export CREDENTIALS_DIRECTORY="$PWD/credentials"
          exec ${lib.escapeShellArgs ([ "${vmcreds}/bin/vmcreds-host" ] ++ vm.hostArgs)} \
            -- ${qemu}/bin/${bin} "$@" ${lib.escapeShellArgs vm.qemu.reportArgs}
        '';
    in
    hostPkgs.symlinkJoin {
      name = "qemu-through-vmcreds";
      paths = [ qemu ];
      # The driver calls qemu-system-x86_64 (older nixpkgs: qemu-kvm).
      postBuild = ''
        for bin in qemu-system-x86_64 qemu-kvm; do
          if [ -e "$out/bin/$bin" ]; then
            rm "$out/bin/$bin"
          fi
        done
        ln -s ${wrapper "qemu-system-x86_64"} $out/bin/qemu-system-x86_64
        ln -s ${wrapper "qemu-kvm"} $out/bin/qemu-kvm
      '';
    };

  # The guest side: the guest module, and the binary on PATH for the test script.
  guestModule =
    { ... }:
    {
      imports = [ self.nixosModules.guest ];
      services.vmcreds.check.enable = true;
      virtualisation.memorySize = 1024;
    };

  # Python shared by the test scripts. Plain (unannotated) functions: the
  # driver type-checks the script with mypy and lints it with pyflakes.
  pythonHelpers = ''
    import base64
    import hashlib
    import json
    import os
    import subprocess
    import time
    from pathlib import Path

    VMCREDS_HOST = "${vmcreds}/bin/vmcreds-host"
    SOCKET_ACTIVATE = "${hostPkgs.systemd}/bin/systemd-socket-activate"


    def make_secrets():
        # The reference sizes: 44, 44 and 88 bytes (base64 of 32/32/64 random bytes).
        return {
            "API_KEY": base64.b64encode(os.urandom(32)),
            "DB_PASSWORD": base64.b64encode(os.urandom(32)),
            "JWT_SECRET": base64.b64encode(os.urandom(64)),
        }


    def prepare_host(machine, secrets):
        # What LoadCredential= would provide: one 0400 file per credential ID.
        creds = machine.state_dir / "credentials"
        creds.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, value in secrets.items():
            path = creds / name
            path.write_bytes(value)
            path.chmod(0o400)
        (machine.state_dir / "vmcreds").mkdir(mode=0o700, exist_ok=True)


    def wait_for_path(path, timeout):
        deadline = time.monotonic() + timeout
        while not Path(path).exists():
            if time.monotonic() > deadline:
                raise Exception(f"{path} did not appear within {timeout} s")
            time.sleep(0.5)


    def forms(value):
        # Every form a leaked secret could take in a log or on argv.
        return [value, base64.b64encode(value), value.hex().encode()]


    def assert_no_secret(where, text, secrets):
        data = text.encode() if isinstance(text, str) else text
        for name, value in secrets.items():
            for form in forms(value):
                if form in data:
                    # Name the credential and the place, never the bytes.
                    raise Exception(f"secret {name} appears in {where}")


    def by_name(doc):
        # Manifest and report: "credentials" is a list of {"name": …} objects
        # (or an object keyed by name).
        creds = doc["credentials"]
        if isinstance(creds, dict):
            return creds
        return {c["name"]: c for c in creds}


    def digest_of(entry):
        d = entry["digest"]
        if isinstance(d, dict):
            return (d["alg"], d["hex"])
        return (entry.get("alg"), d)


    def qemu_cmdlines():
        # The argv of every QEMU the wrapper started (a sandbox holds only ours).
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"type=11,path=" in cmdline:
                found.append(cmdline)
        return found


    def start_collect(machine, timeout):
        # What the host module's vmcreds-collect-<name>.socket and .service do:
        # listen on the report socket the module attached to the guest before
        # QEMU starts; QEMU's connection then starts vmcreds-host collect with
        # the listener as fd 3 (systemd-socket-activate execs it in place).
        out_dir = machine.state_dir / "vmcreds"
        sock = out_dir / "report.sock"
        proc = subprocess.Popen(
            [
                SOCKET_ACTIVATE,
                "--listen",
                str(sock),
                VMCREDS_HOST,
                "collect",
                "--listen",
                f"unix:{sock}",
                "--manifest",
                str(out_dir / "manifest.json"),
                "--report-out",
                str(out_dir / "collected-report.json"),
                "--timeout",
                str(timeout),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for_path(sock, 60)
        return proc


    def sha256_hex(value):
        return hashlib.sha256(value).hexdigest()


    def load_json(text):
        return json.loads(text)
  '';
}
