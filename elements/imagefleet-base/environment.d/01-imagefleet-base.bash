# Defaults for the imagefleet-base element; every one can be overridden.
# Named 01- so these come before other elements' ${VAR:-default} lines.
export DIB_IMAGEFLEET_BUILD_ID=${DIB_IMAGEFLEET_BUILD_ID:-unknown}
export DIB_IMAGEFLEET_LOGIN_USER=${DIB_IMAGEFLEET_LOGIN_USER:-debian}
export DIB_IMAGEFLEET_DATASOURCES=${DIB_IMAGEFLEET_DATASOURCES:-"ConfigDrive, OpenStack, NoCloud"}
export DIB_IMAGEFLEET_HOST_KEY_TYPES=${DIB_IMAGEFLEET_HOST_KEY_TYPES:-ed25519}
# Empty keeps Debian's generic kernel: the cloud kernel has no e1000/rtl8139.
export DIB_IMAGEFLEET_KERNEL=${DIB_IMAGEFLEET_KERNEL:-}
# Lean first boot: no boot menu wait; cloud-init writes the interface config;
# no open-iscsi (the base element's only package, an iscsid socket at boot).
export DIB_GRUB_TIMEOUT=${DIB_GRUB_TIMEOUT:-0}
export DIB_APT_MINIMAL_CREATE_INTERFACES=${DIB_APT_MINIMAL_CREATE_INTERFACES:-0}
export DIB_SKIP_BASE_PACKAGE_INSTALL=${DIB_SKIP_BASE_PACKAGE_INSTALL:-1}
