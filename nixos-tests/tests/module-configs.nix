# The configurations the evaluation cases use, by name: { host = MODULE; } or
# { guest = MODULE; }. Shared by module-cases.nix (booleans, with nixpkgs'
# module system in `nix flake check` and with the stand-in in check.sh) and by
# the golden outputs (eval/golden.nix: assertions, warnings, hostArgs and the
# rendered units of each, recorded with nixpkgs' real lib).
#
# storePath: some path in the Nix store (a secret put there by mistake).
{ storePath }:

let
  qemuVm = extra: {
    a = {
      hypervisor = "qemu";
      qemu.command = [
        "qemu-system-x86_64"
        "-machine"
        "q35"
      ];
      credentials.API_KEY = "/run/secrets/api-key";
    }
    // extra;
  };
  host = vms: { host.services.vmcreds.vms = vms; };
in
{
  # `credentials.X = "${./secret}"` would copy the secret into the world-readable store.
  store-path = host (qemuVm { credentials.API_KEY = storePath; });
  relative-path = host (qemuVm { credentials.API_KEY = "secrets/api-key"; });
  bad-name = host (qemuVm { credentials."API,KEY" = "/run/secrets/api-key"; });
  newline-path = host (qemuVm { credentials.API_KEY = "/run/secrets/api\nkey"; });
  microvm-machine = host (qemuVm {
    qemu.command = [
      "qemu-system-x86_64"
      "-M"
      "microvm,x-option-roms=off"
    ];
  });
  microvm-machine-type = host (qemuVm {
    qemu.command = [
      "qemu-system-x86_64"
      "-machine"
      "accel=kvm,type=microvm"
    ];
  });
  qemu-in-microvm-unit = host (qemuVm { unit = "microvm@a.service"; });
  report-without-manifest = host (qemuVm {
    report.enable = true;
    manifest = false;
  });
  api-without-config = host {
    a = {
      hypervisor = "cloud-hypervisor";
      credentials.API_KEY = "/run/secrets/api-key";
    };
  };
  shared-unit = host {
    a = {
      hypervisor = "qemu";
      unit = "vm.service";
      qemu.command = [ "qemu-system-x86_64" ];
      settings.A = "1";
    };
    b = {
      hypervisor = "qemu";
      unit = "vm.service";
      qemu.command = [ "qemu-system-x86_64" ];
      settings.A = "1";
    };
  };

  good = host (qemuVm {
    settings.ENVIRONMENT = "test";
    report.enable = true;
  });
  percent-path = host (qemuVm { credentials.API_KEY = "/run/secrets/50%"; });
  # systemd's name rule (allowAnyName): '%' and '\' are special in
  # LoadCredential=, a space and dots are not, a leading space would be stripped.
  any-name = host (qemuVm {
    allowAnyName = true;
    credentials = {
      "KEY%Z" = "/run/secrets/key-z";
      "KEY%n" = "/run/secrets/key-n";
      "A\\B" = "/run/secrets/a\\b";
      "with space" = "/run/secrets/with space";
      " lead" = "/run/secrets/lead";
      "dot.ted." = "/run/secrets/dot.ted";
    };
  });
  vm-name-dots = host {
    "my.vm" = {
      hypervisor = "qemu";
      qemu.command = [
        "qemu-system-x86_64"
        "-machine"
        "q35"
      ];
      credentials.API_KEY = "/run/secrets/api-key";
      report.enable = true;
    };
  };
  vm-name-refused = host {
    "my vm" = {
      hypervisor = "qemu";
      qemu.command = [ "qemu-system-x86_64" ];
      settings.A = "1";
    };
    "50%" = {
      hypervisor = "qemu";
      qemu.command = [ "qemu-system-x86_64" ];
      settings.A = "1";
    };
    "a\\b" = {
      hypervisor = "qemu";
      qemu.command = [ "qemu-system-x86_64" ];
      settings.A = "1";
    };
  };

  env-mode = host {
    vm1 = {
      hypervisor = "cloud-hypervisor";
      cloudHypervisor.mode = "env";
      credentials.API_KEY = "/run/secrets/api-key";
    };
  };
  api-mode = host {
    vm2 = {
      hypervisor = "cloud-hypervisor";
      cloudHypervisor.vmConfig = "/etc/vm2.json";
      credentials.API_KEY = "/run/secrets/api-key";
    };
  };
  fw-cfg-mode = host {
    vm3 = {
      hypervisor = "cloud-hypervisor";
      cloudHypervisor.mode = "fw-cfg";
      credentials = {
        API_KEY = "/run/secrets/api-key";
        "DB.PASSWORD" = "/run/secrets/50%/db-password";
      };
      settings.ENVIRONMENT = "test";
      oemStrings = [ "io.systemd.credential:vmm.notify_socket=vsock-stream:2:8888" ];
      report = {
        enable = true;
        socket = "/var/lib/microvms/vm3/notify.vsock_9999";
      };
    };
  };
  fw-cfg-bad-name = host {
    vm3 = {
      hypervisor = "cloud-hypervisor";
      cloudHypervisor.mode = "fw-cfg";
      allowAnyName = true;
      credentials = {
        "A_NAME_LONGER_THAN_28_BYTES_X" = "/run/secrets/long";
        "a*b" = "/run/secrets/glob";
      };
    };
  };

  guest = {
    guest.services.vmcreds.check = {
      enable = true;
      expect = {
        API_KEY = 44;
        DB_PASSWORD = 44;
      };
      reportTo = [ "virtio-port:vmcreds.report" ];
      requiredBy = [ "app.service" ];
    };
  };
  guest-fw-cfg = {
    guest.services.vmcreds.check = {
      enable = true;
      fwCfg = true;
      expect = [ "API_KEY" ];
      reportTo = [ "vsock:2:9999" ];
      notify = true;
    };
  };
}
