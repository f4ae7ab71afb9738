# The failure case: the host withholds DB_PASSWORD, which the guest expects.
# The strict vmcreds-check.service must fail, naming DB_PASSWORD, and a service
# that requires it (services.vmcreds.check.requiredBy) must not start, so it
# never runs with a missing secret. The credentials that were delivered are
# still there, and no secret reaches the journal.
{ self }:

{ lib, hostPkgs, ... }:

let
  common = import ./common.nix { inherit self lib hostPkgs; };
  vm = common.hostVm {
    credentials = builtins.removeAttrs common.referenceCredentials [ "DB_PASSWORD" ];
    settings = common.referenceSettings;
  };
in
{
  name = "vmcreds-strict-failure";

  qemu.package = common.wrapQemu vm;

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ common.guestModule ];
      services.vmcreds.check = {
        expect = {
          API_KEY = 44;
          DB_PASSWORD = 44;
          JWT_SECRET = 88;
        };
        strict = true;
        requiredBy = [ "needs-secrets.service" ];
      };

      # Stands for an application that must never start without its secrets.
      systemd.services.needs-secrets = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = "${pkgs.coreutils}/bin/touch /run/needs-secrets-ran";
        };
      };
    };

  testScript = ''
    ${common.pythonHelpers}

    secrets = make_secrets()
    del secrets["DB_PASSWORD"]
    prepare_host(machine, secrets)

    machine.start()
    machine.wait_for_unit("multi-user.target")

    with subtest("the strict check fails and says which credential is missing"):
        machine.wait_until_succeeds("systemctl is-failed vmcreds-check.service")
        t.assertIn(
            "Result=exit-code",
            machine.succeed("systemctl show -p Result vmcreds-check.service"),
        )
        journal = machine.succeed("journalctl -b -u vmcreds-check.service --no-pager -o cat")
        t.assertIn("DB_PASSWORD", journal)
        assert_no_secret("the vmcreds-check journal", journal, secrets)

    with subtest("the service that requires the check did not start"):
        machine.fail("systemctl is-active needs-secrets.service")
        machine.fail("test -e /run/needs-secrets-ran")
        t.assertIn(
            "vmcreds-check.service",
            machine.succeed("systemctl show -p Requires needs-secrets.service"),
        )

    with subtest("vmcreds-guest check exits 1 and reports DB_PASSWORD missing"):
        status, out = machine.execute(
            "vmcreds-guest check --json --strict --expect DB_PASSWORD:44"
        )
        t.assertEqual(status, 1)
        report = load_json(out)
        t.assertEqual(by_name(report)["DB_PASSWORD"]["status"], "missing")
        assert_no_secret("the guest report", out, secrets)

    with subtest("what was delivered arrived whole"):
        for name, value in secrets.items():
            path = f"/run/credentials/@system/{name}"
            t.assertEqual(machine.succeed(f"sha256sum {path}").split()[0], sha256_hex(value))
        machine.fail("test -e /run/credentials/@system/DB_PASSWORD")

    with subtest("no secret in the guest's journal"):
        assert_no_secret(
            "the guest journal", machine.succeed("journalctl -b --no-pager -o cat"), secrets
        )
  '';
}
