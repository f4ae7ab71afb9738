# The reference scenario with boot.initrd.systemd.enable = true. systemd then
# imports SMBIOS credentials once, in the initrd's PID 1, and never again after
# switch-root: if dmi_sysfs cannot be loaded in the initrd, every credential is
# lost without a log line (systemd/systemd#37391). The guest module puts
# dmi_sysfs into boot.initrd.availableKernelModules; this test proves the
# credentials survive that path.
{ self }:

import ./qemu-credentials.nix {
  inherit self;
  systemdInitrd = true;
}
