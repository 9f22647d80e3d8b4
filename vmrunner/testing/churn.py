"""Random live edits of a running test guest's configuration (soak ``--churn``, issue 15).

:class:`Churn` owns a test-guest configuration with everything that can change live (RAM via
the balloon, vCPUs, a SCSI CD, ``resetCounter``, the SPICE password file) and rewrites it,
atomically, with one random change per :meth:`Churn.edit`. Each edit is valid: the point is
to drive QEMU through sequences of commands the runner may send, not to test rejection.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import yaml

from vmrunner.testing.guest import GuestImage
from vmrunner.testing.iso import make_iso
from vmrunner.testing.runnerproc import guest_config

RAM_MIB = (160, 192, 224, 256)
EDITS = ("ram", "cpus", "cd", "reset", "password")


class Churn:
    """One VM's configuration under random live edits (see the module docstring).

    ``rng`` decides everything, so a seed reproduces a sequence. :attr:`edits` lists what
    was changed, in order (``"cpus=2"``, ``"reset"``...).
    """

    def __init__(self, base: Path, image: GuestImage, accel: str, disk: Path, *,
                 rng: random.Random, spice_port: int) -> None:
        self.base = base
        self.rng = rng
        self.isos = [make_iso(base / f"cd{n}.iso", {"marker.txt": f"{n}\n".encode()},
                              volume_id=f"CD{n}") for n in range(2)]
        self.password = base / "display-password"
        self.password.write_text("first\n")
        self.password.chmod(0o600)
        path = guest_config(
            base, image, accel=accel, maximumCpus=2, currentCpus=1,
            maximumRam="256 MiB", currentRam="256 MiB",
            drives=[{"file": str(disk)},
                    {"type": "ide-cd", "bus": "scsi", "file": str(self.isos[0])}],
            display={"spice": {"port": spice_port, "address": "127.0.0.1",
                               "passwordFile": str(self.password)}},
            runner={"resetCounter": 0})
        self.config = path
        self.values: dict[str, Any] = yaml.safe_load(path.read_text())
        self.edits: list[str] = []

    @property
    def vm(self) -> dict[str, Any]:
        values: dict[str, Any] = self.values["/Runner"]["vm"]
        return values

    def edit(self) -> str:
        """One random valid change, written atomically; returns its description."""
        kind = self.rng.choice(EDITS)
        vm = self.vm
        if kind == "ram":
            ram = self.rng.choice([r for r in RAM_MIB if f"{r} MiB" != vm["currentRam"]])
            vm["currentRam"] = f"{ram} MiB"
            what = f"currentRam={ram}"
        elif kind == "cpus":
            vm["currentCpus"] = 3 - int(vm["currentCpus"])
            what = f"currentCpus={vm['currentCpus']}"
        elif kind == "cd":
            cd = vm["drives"][1]
            choices = [str(iso) for iso in self.isos] + [""]
            cd["file"] = self.rng.choice([c for c in choices if c != cd["file"]])
            what = f"cd={Path(cd['file']).name or 'empty'}"
        elif kind == "reset":
            self.values["/Runner"]["resetCounter"] += 1
            what = "reset"
        else:
            self.password.write_text(f"pw-{self.rng.randrange(1 << 30)}\n")
            what = "password"
        if kind != "password":
            self._write()
        self.edits.append(what)
        return what

    def _write(self) -> None:
        temporary = self.config.with_name(".config.yaml.new")
        temporary.write_text(yaml.safe_dump(self.values, sort_keys=False))
        os.replace(temporary, self.config)
