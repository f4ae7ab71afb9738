# The reference scenario over QEMU, through the host module's arguments:
# API_KEY (44 bytes), DB_PASSWORD (44), JWT_SECRET (88) from files, plus
# ENVIRONMENT=test and CLUSTER=nixos-test. The guest's vmcreds-check.service
# verifies them at boot and reports over virtio-serial to `vmcreds-host
# collect`; the test script compares the guest's digests with the host's
# manifest and the imported bytes with the host's files, and checks that no
# secret reached QEMU's argv or the guest's journal.
#
# systemdInitrd = true is the same test with boot.initrd.systemd.enable
# (systemd-initrd.nix).
{
  self,
  systemdInitrd ? false,
}:

{ lib, hostPkgs, ... }:

let
  common = import ./common.nix { inherit self lib hostPkgs; };
  vm = common.hostVm {
    credentials = common.referenceCredentials;
    settings = common.referenceSettings;
    report.enable = true;
  };
  expected = {
    API_KEY = 44;
    DB_PASSWORD = 44;
    JWT_SECRET = 88;
  };
in
{
  name = if systemdInitrd then "vmcreds-systemd-initrd" else "vmcreds-qemu-credentials";

  qemu.package = common.wrapQemu vm;

  nodes.machine =
    { config, ... }:
    {
      imports = [ common.guestModule ];
      services.vmcreds.check = {
        expect = expected;
        strict = true;
        reportTo = [ "virtio-port:${vm.report.portName}" ];
      };
      boot.initrd.systemd.enable = systemdInitrd;

      assertions = [
        {
          assertion = lib.elem "dmi_sysfs" config.boot.initrd.availableKernelModules;
          message = "the guest module must put dmi_sysfs into the initrd";
        }
      ];
    };

  testScript = ''
    ${common.pythonHelpers}

    secrets = make_secrets()
    settings = {"ENVIRONMENT": b"test", "CLUSTER": b"nixos-test"}
    prepare_host(machine, secrets)
    collect = start_collect(machine, 900)

    machine.start()
    manifest_path = machine.state_dir / "vmcreds" / "manifest.json"
    wait_for_path(manifest_path, 300)

    with subtest("QEMU got the credentials from files, none on its command line"):
        cmdlines = qemu_cmdlines()
        t.assertTrue(cmdlines, "no QEMU with a type=11 SMBIOS argument is running")
        for cmdline in cmdlines:
            t.assertIn(b"qemu", cmdline.split(b"\0")[0])
            assert_no_secret("the QEMU command line", cmdline, secrets)

    with subtest("vmcreds-check.service passes at boot"):
        machine.wait_for_unit("vmcreds-check.service")
        t.assertIn(
            "Result=success",
            machine.succeed("systemctl show -p Result vmcreds-check.service"),
        )
    ${lib.optionalString systemdInitrd ''
      with subtest("dmi_sysfs is usable, so the initrd's PID 1 could import the credentials"):
          # Built as a module in NixOS kernels: the guest module puts it into the
          # initrd. Without it the credential checks below find nothing at all.
          machine.succeed("test -e /sys/firmware/dmi/entries/11-0/raw")
          machine.succeed("test -d /run/credentials/@system")
    ''}
    with subtest("systemd imported every credential with the right size and bytes"):
        for name, value in {**secrets, **settings}.items():
            path = f"/run/credentials/@system/{name}"
            size = int(machine.succeed(f"stat -c %s {path}").strip())
            t.assertEqual(size, len(value), f"{name}: size")
            guest_sha = machine.succeed(f"sha256sum {path}").split()[0]
            t.assertEqual(guest_sha, sha256_hex(value), f"{name}: content")
        listed = load_json(machine.succeed("systemd-creds --system list --json=short"))
        names = {c["name"] for c in listed}
        for name in [*secrets, *settings, "vmcreds.manifest"]:
            t.assertIn(name, names)

    with subtest("vmcreds-guest check --json agrees with the host's manifest"):
        report = load_json(machine.succeed("vmcreds-guest check --json"))
        t.assertEqual(report["verdict"]["result"], "verified")
        manifest = load_json(manifest_path.read_text())
        host_side = by_name(manifest)
        guest_side = by_name(report)
        t.assertEqual(set(host_side), set(secrets) | set(settings))
        for name, value in {**secrets, **settings}.items():
            t.assertEqual(host_side[name]["bytes"], len(value), f"{name}: manifest size")
            t.assertEqual(guest_side[name]["bytes"], len(value), f"{name}: report size")
            t.assertEqual(guest_side[name]["status"], "ok", f"{name}: status")
            t.assertEqual(
                digest_of(guest_side[name]), digest_of(host_side[name]), f"{name}: digest"
            )
        for doc, where in [(manifest, "the manifest"), (report, "the guest report")]:
            assert_no_secret(where, json.dumps(doc), secrets)

    with subtest("the host's collect received the guest's report and verified it"):
        out, err = collect.communicate(timeout=900)
        assert_no_secret("collect's output", out + err, secrets)
        t.assertEqual(collect.returncode, 0, err.decode(errors="replace"))
        collected = load_json(
            (machine.state_dir / "vmcreds" / "collected-report.json").read_text()
        )
        for name in [*secrets, *settings]:
            t.assertEqual(by_name(collected)[name]["status"], "ok", f"{name}: collected status")

    with subtest("no secret in the guest's journal"):
        assert_no_secret(
            "the guest journal", machine.succeed("journalctl -b --no-pager -o cat"), secrets
        )
  '';
}
