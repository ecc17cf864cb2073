"""Programs from Debian's archive that some suites drive (chromium, the aws cli v2,
restic): found on PATH, else installed with apt-get, as services/rgw.sh installs Ceph."""

from __future__ import annotations

import os
import shutil
import subprocess


def ensure_installed(program: str, package: str | None = None) -> str:
    """The path of `program`, installing Debian's `package` (default: the program's name)
    with apt-get (as root, or with `sudo -n`) when it is missing."""
    found = shutil.which(program)
    if found is not None:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    install = [*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends"]
    install.append(package or program)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    found = shutil.which(program)
    assert found is not None, f"apt-get installed {package or program} but no {program} on PATH"
    return found
