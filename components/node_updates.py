"""Security updates on every node: unattended-upgrades from the distribution's security pocket only,
with its own automatic reboot off (a reboot is the operator's, or kured's, to schedule).

Every blueprint the stack offers (settings.BLUEPRINTS) is Ubuntu or Debian, whose apt ships
unattended-upgrades. Its settings are apt configuration (apt.conf(5)): files in
/etc/apt/apt.conf.d are read in name order and a later value wins; a list such as
Unattended-Upgrade::Origins-Pattern grows with every file that names it, so `#clear` first
empties what the distribution's own 50unattended-upgrades put there (Ubuntu's also allows the
release pocket, Debian's its point releases).
"""

from __future__ import annotations

# Its name in /etc/apt/apt.conf.d (the install scripts' APT_CONF_DIR): read after 20auto-upgrades
# and 50unattended-upgrades (the package's own), so its values win.
SECURITY_UPDATES_CONF_NAME = "52lightsail-k3s-security-updates"

# The security pocket of each distribution, as unattended-upgrades matches it against an archive's
# Release file (origin=, codename=, archive= for its Suite, label=). These are the security lines of
# the defaults the package ships (mvo5/unattended-upgrades data/50unattended-upgrades.Debian:
# "origin=Debian,codename=${distro_codename}-security,label=Debian-Security"; .Ubuntu:
# "${distro_id}:${distro_codename}-security", an origin:archive pair), without their other pockets.
# Each pattern matches only its own distribution's archives, so one file serves every blueprint.
SECURITY_POCKETS = {
    "ubuntu": "origin=Ubuntu,archive=${distro_codename}-security",
    "debian": "origin=Debian,codename=${distro_codename}-security,label=Debian-Security",
}


def distribution(blueprint_id: str) -> str:
    """ubuntu_24_04 -> ubuntu: the distribution a Lightsail blueprint runs."""
    return blueprint_id.split("_", 1)[0]


def security_updates_conf() -> str:
    """The apt configuration every node's install writes as SECURITY_UPDATES_CONF_NAME."""
    patterns = "".join(f'    "{pattern}";\n' for pattern in SECURITY_POCKETS.values())
    return (
        "// Written by lightsail-k3s on every pulumi up; edits here are overwritten.\n"
        "// Daily: refresh the package lists, then install what the security pockets offer.\n"
        'APT::Periodic::Update-Package-Lists "1";\n'
        'APT::Periodic::Unattended-Upgrade "1";\n'
        "#clear Unattended-Upgrade::Allowed-Origins;\n"
        "#clear Unattended-Upgrade::Origins-Pattern;\n"
        "Unattended-Upgrade::Origins-Pattern {\n"
        f"{patterns}"
        "};\n"
        "// A node never reboots by itself: /var/run/reboot-required says one is due, and the\n"
        "// health report (make health) lists the nodes waiting.\n"
        'Unattended-Upgrade::Automatic-Reboot "false";\n'
    )
