"""The pydantic model of the ``/Runner`` configuration node.

Keys are camelCase (``dataDir``, ``vm.maximumRam``); Python code may also use the snake_case
field names. Cross-field rules are checked by field validators on the *later* field, so an error
names the key that has to change (``/Runner/vm/currentCpus``), not the enclosing mapping.
Models are frozen: a configuration is a value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from vmrunner.config.sizes import MIB, format_memory, parse_memory

MAX_CPUS = 288
"""QEMU 7.2's limit for the q35 machine."""
IDE_PORTS = 6
"""q35's built-in AHCI controller has six ports (``ide.0`` ... ``ide.5``)."""


def _memory(value: object) -> int:
    try:
        return parse_memory(value)
    except ValueError as exc:
        raise PydanticCustomError("memory_size", str(exc)) from None


MemorySize = Annotated[
    int,
    BeforeValidator(_memory),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "description": "bytes"},
                {
                    "type": "string",
                    "pattern": r"^\s*(\d+(\.\d+)?|\.\d+)([eE]\d+)?\s*[A-Za-z]*\s*$",
                    "examples": ["1 GiB", "512Mi", "2G", "1073741824"],
                },
            ]
        }
    ),
]
"""A memory size in bytes, given as a number or a string with a unit (see ``sizes``)."""


def _pattern(regex: str, what: str) -> AfterValidator:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise PydanticCustomError(
                "bad_format", "'{value}' is not a valid {what}", {"value": value, "what": what}
            )
        return value

    return AfterValidator(check)


Name = Annotated[str, _pattern(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", "VM name "
                               "(letters, digits, '.', '_', '-'; at most 63; no leading '.')")]
Identifier = Annotated[str, _pattern(r"[A-Za-z0-9][A-Za-z0-9._-]*", "QEMU model name")]
CpuFeature = Annotated[str, _pattern(
    r"[+-]?[A-Za-z0-9_.-]+(=[A-Za-z0-9_.-]+)?",
    "CPU feature (e.g. '+ssse3', '-arch-capabilities', 'l3-cache=on')")]
def _quoted_mac(value: object) -> object:
    """YAML 1.1 reads an unquoted ``52:54:00:12:34:56`` as a base-60 number: say so."""
    if isinstance(value, int) and not isinstance(value, bool):
        parts: list[int] = []
        rest = value
        while rest:
            rest, part = divmod(rest, 60)
            parts.insert(0, part)
        written = ":".join(f"{p:02d}" for p in parts) or "0"
        raise PydanticCustomError(
            "mac_unquoted", "a MAC address must be quoted: YAML read {written} as the number "
            "{value} (write mac: \"{written}\")", {"written": written, "value": value})
    return value


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*")
_TIME_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60,
               "mins": 60, "minute": 60, "minutes": 60, "h": 3600, "hour": 3600,
               "hours": 3600}


def _seconds(value: object) -> object:
    """A duration written with a unit (``5m``) is refused with the number of seconds meant."""
    if not isinstance(value, str):
        return value
    match = _DURATION.fullmatch(value)
    if match is None:
        return value
    factor = _TIME_UNITS.get(match[2].lower())
    if factor is None:
        raise PydanticCustomError(
            "seconds", "\"{value}\": the value is a number of seconds, without a unit",
            {"value": value})
    meant = float(match[1]) * factor
    raise PydanticCustomError(
        "seconds", "\"{value}\": the value is in seconds, without a unit; did you mean {meant}?",
        {"value": value, "meant": int(meant) if meant.is_integer() else meant})


MacAddress = Annotated[str, BeforeValidator(_quoted_mac),
                       _pattern(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", "MAC address")]
_TOPOLOGY_KEYS = ("sockets", "diesPerSocket", "coresPerDie", "threadsPerCore",
                  "dies_per_socket", "cores_per_die", "threads_per_core")
"""The topology keys in both spellings (only one spelling of each is present)."""


def _derived_maximum_cpus(data: dict[str, Any]) -> int | None:
    """``maximumCpus`` for a configuration that leaves it unset: the topology's product when
    all four values are given, else ``currentCpus`` (rounded up to a multiple of the given
    topology values); ``None`` (the default, 1) when there is nothing to derive it from."""
    parts = [data.get(k) for k in _TOPOLOGY_KEYS if data.get(k) is not None]
    parts += [None] * (4 - len(parts))
    if not all(p is None or (isinstance(p, int) and not isinstance(p, bool) and p > 0)
               for p in parts):
        return None  # reported by the field validators
    given = [p for p in parts if p is not None]
    product = 1
    for p in given:
        product *= p
    if given and len(given) == len(parts):
        return product
    current = data.get("currentCpus", data.get("current_cpus"))
    if not isinstance(current, int) or isinstance(current, bool) or current < 1:
        return product if given else None
    return -(-current // product) * product


RtcBase = Annotated[str, _pattern(
    r"utc|localtime|\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2})?",
    "rtc base ('utc', 'localtime' or a date like 2006-06-17T16:01:21)")]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_byte", "a NUL character cannot be passed to a program")
    return value


def _config_path(value: Path, info: ValidationInfo) -> Path:
    _no_nul(str(value))
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return Path(base) / value
    return value


MAX_USB_REDIRECTS = 32
"""Most ``usbRedirects`` accepted (QEMU 7.2 started with 40 on the standard template)."""


def _empty_is_unset(value: object) -> object:
    return None if value == "" else value


USER_NAME_MAX = 64
"""Longest ``loggedInUser`` accepted (it goes onto the vmop agent's line protocol)."""


def _user_name(value: str) -> str:
    if not value:
        raise PydanticCustomError("user_name", "an empty user name (remove the key to log out)")
    if len(value) > USER_NAME_MAX:
        raise PydanticCustomError(
            "user_name", "a user name of {n} characters (at most {max})",
            {"n": len(value), "max": USER_NAME_MAX})
    bad = next((c for c in value if c.isspace() or not c.isprintable()), None)
    if bad is not None:
        raise PydanticCustomError(
            "user_name", "the user name contains {char}: no whitespace or control characters "
            "(it is sent to the guest's agent as one line, 'login <user>')",
            {"char": repr(bad)})
    return value


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _not_a_url(value: object) -> object:
    if value == "":
        raise PydanticCustomError("empty_path", "an empty path")
    if isinstance(value, str) and _URL.match(value):
        raise PydanticCustomError(
            "url", "'{value}' is a URL; only local image files are supported (copy the image "
                   "into a mounted directory, e.g. VM-Operator's image repository "
                   "/var/local/vmop-image-repository, and give its path)", {"value": value})
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
"""Free text handed to QEMU (no NUL characters)."""
ConfigPath = Annotated[Path, AfterValidator(_config_path)]
"""A path; relative paths are relative to the configuration file's directory."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
    )
    # The attribute docstrings below are the documentation of each key. They are read by
    # vmrunner.config.schema (for docs/), not by pydantic at import: pydantic's
    # use_attribute_docstrings costs the runner ~20 ms of start-up for text it never shows.


class KernelConfig(_Model):
    """Direct kernel boot: QEMU loads the kernel (and initrd) itself, no boot loader."""

    image: ConfigPath
    """The kernel image (bzImage)."""
    initrd: ConfigPath | None = None
    """An initial ramdisk."""
    cmdline: Text | None = None
    """The kernel command line (QEMU ``-append``), e.g. ``console=ttyS0 quiet``."""


_HOST_FORWARD = re.compile(
    r"(tcp|udp):((?:\d{1,3}\.){3}\d{1,3})?:(\d{1,5})-((?:\d{1,3}\.){3}\d{1,3})?:(\d{1,5})")


def _host_forward(value: str) -> str:
    """``PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT``, QEMU's ``hostfwd`` syntax with the
    protocol required, ports 1-65535 and dotted-quad IPv4 addresses."""
    m = _HOST_FORWARD.fullmatch(value)
    ok = m is not None and all(1 <= int(m.group(i)) <= 65535 for i in (3, 5)) and all(
        0 <= int(part) <= 255 for i in (2, 4) if m.group(i) for part in m.group(i).split("."))
    if not ok:
        raise PydanticCustomError(
            "bad_format", "'{value}' is not a port forward: write PROTO:[HOSTADDR]:HOSTPORT-"
            "[GUESTADDR]:GUESTPORT, e.g. 'tcp:127.0.0.1:2222-:22'", {"value": value})
    return value


HostForward = Annotated[str, AfterValidator(_host_forward)]


class NetworkConfig(_Model):
    """One network interface: a tap on a bridge (via qemu-bridge-helper) or user-mode networking."""

    type: Literal["tap", "user"] = "tap"
    """``tap``: a tap device on ``bridge`` (needs qemu-bridge-helper); ``user``: QEMU's slirp."""
    bridge: Text | None = None
    """tap only: the bridge name (QEMU's default, usually ``br0``, when unset)."""
    device: Identifier = "virtio-net-pci"
    """The guest's NIC model (QEMU ``-device`` driver)."""
    mac: MacAddress | None = None
    """A fixed MAC address; QEMU picks one when unset."""
    net: Text | None = None
    """user only: the guest network, e.g. ``10.0.2.0/24``."""
    host_forwards: list[HostForward] = Field(default_factory=list)
    """user only: ports of the host forwarded into the guest, QEMU's ``hostfwd`` as
    ``PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT``, e.g. ``tcp:127.0.0.1:2222-:22`` (SSH
    to the guest as port 2222 of the host's loopback; an empty HOSTADDR means every address)."""

    @model_validator(mode="after")
    def _type_specific(self) -> NetworkConfig:
        if self.type == "user" and self.bridge is not None:
            raise PydanticCustomError("bad_combination", "'bridge' applies to type tap only")
        if self.type == "tap" and self.net is not None:
            raise PydanticCustomError("bad_combination", "'net' applies to type user only")
        if self.type == "tap" and self.host_forwards:
            raise PydanticCustomError(
                "bad_combination", "'hostForwards' applies to type user only")
        return self


class DriveConfig(_Model):
    """A disk (``raw``) or a CD-ROM drive (``ide-cd``)."""

    @model_validator(mode="before")
    @classmethod
    def _empty_file(cls, data: Any) -> Any:
        # VM-Operator writes an ide-cd without an image as ``file: ""``: an empty tray
        if isinstance(data, dict) and data.get("file") == "" and data.get("type") == "ide-cd":
            return {k: v for k, v in data.items() if k != "file"}
        return data

    @model_validator(mode="before")
    @classmethod
    def _truthful_defaults(cls, data: Any) -> Any:
        # the model says what QEMU gets (in status and reload plans too): a raw drive is a
        # virtio-blk disk, a CD is read-only
        if not isinstance(data, dict):
            return data
        if data.get("type", "raw") == "raw" and "bus" not in data:
            return {**data, "bus": "virtio"}
        if data.get("type") == "ide-cd" and "readOnly" not in data and "read_only" not in data:
            return {**data, "readOnly": True}
        return data

    type: Literal["raw", "ide-cd"] = "raw"
    """``raw``: a virtio-blk disk backed by a file or block device; ``ide-cd``: a CD-ROM drive."""
    file: Annotated[ConfigPath | None, BeforeValidator(_not_a_url)] = None
    """raw: an image file; ide-cd: the ISO image (unset or ``""`` = empty tray). A path, not
    a URL (QEMU's curl driver is not supported)."""
    device: Annotated[ConfigPath | None, BeforeValidator(_not_a_url)] = None
    """raw only: a host block device, e.g. ``/dev/vg0/vm-disk``."""
    resource: Annotated[ConfigPath | None, BeforeValidator(_not_a_url)] = None
    """raw only: a file or block device, decided when the VM starts (VM-Operator's disks:
    ``/dev/<name>``, a block device, attached like ``device``)."""
    format: Literal["raw", "qcow2"] = "raw"
    """raw with ``file`` only: the image's format, ``raw`` (the default) or ``qcow2`` (e.g. an
    overlay on a base image); a ``device``/``resource`` or an ide-cd is always raw."""
    bootindex: Annotated[int, Field(ge=0)] | None = None
    """Boot order (lower boots first); unset = not a boot device."""
    bus: Literal["ide", "scsi", "virtio"] = "ide"
    """ide-cd: ``ide`` (q35's AHCI, the default) or ``scsi`` (a scsi-cd on virtio-scsi, for
    guests whose kernel has no AHCI driver). raw: always ``virtio`` (a virtio-blk-pci disk),
    the default; any other value is an error."""
    read_only: bool = False
    """raw: attach the disk read-only. ide-cd: always read-only, so ``true`` (the default
    there) changes nothing and ``false`` is an error."""
    force_after: Annotated[float, Field(gt=0), BeforeValidator(_seconds)] | None = None
    """ide-cd only: seconds after which a media change the guest blocks (locked tray) is
    forced (the guest's mount goes stale); unset = wait for the guest, however long."""

    @model_validator(mode="after")
    def _sources(self) -> DriveConfig:
        given = [k for k in ("file", "device", "resource") if getattr(self, k) is not None]
        if self.type == "raw":
            if len(given) != 1:
                raise PydanticCustomError(
                    "drive_source",
                    "a raw drive needs exactly one of 'file', 'device' or 'resource'"
                    + (f" (got {', '.join(given)})" if given else ""),
                )
        elif self.device is not None or self.resource is not None:
            raise PydanticCustomError("drive_source", "an ide-cd drive takes only 'file'")
        if self.format != "raw" and (self.type != "raw" or self.file is None):
            raise PydanticCustomError(
                "bad_combination", "'format: {format}' applies to a raw drive's 'file' only "
                "(a block device or an ide-cd image is read as raw)", {"format": self.format})
        if self.type == "raw" and self.force_after is not None:
            raise PydanticCustomError("bad_combination", "'forceAfter' applies to ide-cd only")
        if self.type == "raw" and self.bus != "virtio":
            raise PydanticCustomError(
                "bad_combination", "a raw drive is always a virtio-blk disk: 'bus' can only "
                "be 'virtio'")
        if self.type == "ide-cd" and self.bus == "virtio":
            raise PydanticCustomError(
                "bad_combination", "an ide-cd drive's bus is 'ide' or 'scsi'")
        if self.type == "ide-cd" and not self.read_only:
            raise PydanticCustomError(
                "bad_combination", "an ide-cd drive is always read-only: 'readOnly: false' "
                "cannot be honoured (remove it, or use a raw drive)")
        return self


class SpiceConfig(_Model):
    """The SPICE remote display."""

    port: Annotated[int, Field(ge=0, le=65535)] = 5900
    """TCP port QEMU listens on."""
    address: Text | None = None
    """Listen address; unset = all addresses, except without a password (then ``127.0.0.1``
    unless ``allowNoPassword``). Without a password, an address other than loopback needs
    ``allowNoPassword: true``."""
    allow_no_password: bool = False
    """Serve SPICE without a password at ``address`` (unset: on all addresses). Without it,
    a SPICE without a password listens on loopback only."""
    streaming_video: Literal["off", "all", "filter"] | None = Field(
        None, validation_alias=AliasChoices("streamingVideo", "streaming-video",
                                            "streaming_video"))
    """Video streaming detection (QEMU ``-spice streaming-video=``: ``off``, ``all``,
    ``filter``); unset = QEMU's default. Also spelled ``streaming-video`` (as VM-Operator
    writes it); giving both spellings is an error."""
    usb_redirects: Annotated[int, Field(ge=0, le=MAX_USB_REDIRECTS)] = 2
    """Number of USB redirection channels (one ``usb-redir`` device each on the xHCI
    controller; QEMU chains USB hubs when its ports run out)."""
    password_file: ConfigPath | None = None
    """A file holding the SPICE password. QEMU reads it (``-object secret,file=``); the password
    never appears in the command line. Unset = the ``display-password`` file beside the
    configuration if it exists when the VM starts (VM-Operator's display secret), else
    ``ticket``, else no password (ticketing disabled). Later changes of ``display-password``
    apply live (docs/guide/live-changes.md)."""
    ticket: Annotated[Text | None, BeforeValidator(_empty_is_unset)] = Field(None, repr=False)
    """Deprecated (VM-Operator's old static SPICE password): the SPICE password when there is
    neither ``passwordFile`` nor a ``display-password`` file at start (those win). It is written to
    ``runtimeDir/spice-ticket`` (mode 0600) and read by QEMU from there, never put on the
    command line. ``""`` = unset. Changing it needs a restart; prefer ``passwordFile``."""

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "streamingVideo" in data and "streaming-video" in data:
            raise PydanticCustomError(
                "bad_combination", "both 'streamingVideo' and 'streaming-video' are given")
        return data


class DisplayConfig(_Model):
    """The graphical console (a virtio-vga card)."""

    outputs: Annotated[int, Field(ge=1, le=16)] = 1
    """Number of virtual monitors."""
    spice: SpiceConfig | None = None
    """SPICE access; unset = the card exists but nobody can see it."""
    logged_in_user: Annotated[str, AfterValidator(_user_name)] | None = None
    """The user the guest's vmop agent should log in on the console (auto-login, live);
    unset = logged out. At most 64 characters, no whitespace or control characters. Needs an
    agent in the guest on the virtio-serial port ``org.jdrupes.vmop_agent.0``."""


def _null_means_empty(schema: dict[str, Any]) -> None:
    """JSON Schema: ``network`` and ``drives`` may also be null (= none)."""
    properties = schema.get("properties", {})
    for key in ("network", "drives"):
        if key in properties:
            prop = properties[key]
            listed = {k: v for k, v in prop.items() if k not in ("default", "description")}
            rest = {k: v for k, v in prop.items() if k in ("default", "description")}
            properties[key] = {"anyOf": [listed, {"type": "null"}], **rest}


class VmConfig(_Model):
    """The virtual machine."""

    model_config = ConfigDict(json_schema_extra=_null_means_empty)

    name: Name
    """The VM's name: QEMU's guest name and the last component of the default directories."""
    uuid: UUID | None = None
    """The SMBIOS UUID; unset = generated on first start and kept in ``dataDir/uuid.txt``."""
    use_tpm: bool = False
    """Give the VM a TPM 2.0, emulated by swtpm with its state in ``dataDir``."""
    tpm_model: Literal["tpm-tis", "tpm-crb"] = "tpm-tis"
    """The TPM interface the guest sees."""
    firmware: Literal["bios", "uefi", "uefi-4m", "secure", "secure-4m"] = "uefi"
    """``bios`` (SeaBIOS), ``uefi``/``uefi-4m`` (OVMF, 2 MiB or 4 MiB flash) or ``secure``/
    ``secure-4m`` (OVMF with Secure Boot, implies SMM). UEFI variables live in
    ``dataDir/fw-vars.fd``, copied once from the firmware's template."""
    boot_menu: bool = False
    """Show the firmware's boot menu."""
    powerdown_timeout: Annotated[int, Field(ge=0), BeforeValidator(_seconds)] = 900
    """Seconds to wait for the guest to power off after a stop request, before QEMU is
    terminated. Changes apply even while a shutdown is waiting."""
    on_panic: Literal["reset", "stop", "pause"] = "reset"
    """What follows a guest kernel panic reported through the VM's ``pvpanic`` device:
    ``reset`` the guest (it boots again, QEMU keeps running), ``stop`` the runner (QEMU powers
    the VM off; exit code 8, ``GUEST_PANICKED``), or ``pause`` the guest as it panicked, for
    debugging (until a reset or a stop). Changes apply at once."""
    maximum_ram: MemorySize = 1024 * MIB
    """The VM's RAM (``-m``), at least 1 MiB. Any size is accepted (``"1 GB"`` = 10⁹ bytes):
    QEMU rounds it up to a multiple of 8 KiB itself, see *Memory sizes* above."""
    current_ram: MemorySize | None = None
    """The balloon target; unset = ``maximumRam`` (no ballooning). The balloon works in
    4 KiB pages: QEMU reaches the target to within 4 KiB."""
    cpu_model: Identifier | None = None
    """QEMU ``-cpu`` model; unset = ``host`` with KVM, ``max`` otherwise. ``host`` needs KVM:
    with any other accelerator it is run as ``max`` (all features the emulator has), so a
    VM-Operator configuration (always ``cpuModel: host``) also runs under TCG."""
    cpu_features: list[CpuFeature] = Field(default_factory=list)
    """Extra ``-cpu`` flags, e.g. ``-arch-capabilities``."""
    sockets: Annotated[int, Field(ge=0)] | None = None
    """CPU topology: sockets. Unset or 0 = left out of ``-smp`` (QEMU computes it). When all
    four topology values are set, their product must equal ``maximumCpus``; when some are,
    ``maximumCpus`` must be a multiple of the product of those."""
    dies_per_socket: Annotated[int, Field(ge=0)] | None = None
    """CPU topology: dies per socket (unset or 0 = computed by QEMU)."""
    cores_per_die: Annotated[int, Field(ge=0)] | None = None
    """CPU topology: cores per die (unset or 0 = computed by QEMU)."""
    threads_per_core: Annotated[int, Field(ge=0)] | None = None
    """CPU topology: threads per core (unset or 0 = computed by QEMU)."""
    maximum_cpus: Annotated[int, Field(ge=1, le=MAX_CPUS)] = 1
    """The number of vCPU slots (QEMU ``maxcpus``). Unset: the topology's product if all four
    topology values are set, else ``currentCpus`` (rounded up to a multiple of the given
    topology values), else 1."""
    current_cpus: Annotated[int, Field(ge=1)] | None = None
    """vCPUs present (QEMU boots with this many; the rest can be hot-plugged); unset =
    ``maximumCpus``."""
    accelerator: Literal["kvm", "tcg", "auto", "none"] = "kvm"
    """``kvm``, ``tcg`` (emulation), ``auto`` (kvm if the kvm_intel or kvm_amd module is loaded
    and /dev/kvm is usable, else tcg) or ``none`` (QEMU's default)."""
    rtc_base: RtcBase = "utc"
    """What the guest's clock starts at: ``utc``, ``localtime`` or a date."""
    rtc_clock: Literal["host", "rt", "vm"] = "rt"
    """The clock source for the guest's RTC."""
    network: list[NetworkConfig] = Field(default_factory=lambda: [NetworkConfig()])
    """Network interfaces; the default (key absent) is one virtio NIC on a tap on QEMU's
    default bridge. ``[]`` or null (a bare ``network:``) = no network."""
    drives: list[DriveConfig] = Field(default_factory=list)
    """Disks and CD-ROM drives, in order (CD-ROM ids are ``cd0``, ``cd1``, ...). ``[]`` or
    null = none."""
    display: DisplayConfig | None = None
    """The graphical console; unset = headless (``-display none``, no graphics card)."""
    kernel: KernelConfig | None = None
    """Direct kernel boot; unset = boot through the firmware."""
    serial_console: bool = True
    """Add the first serial port; the runner keeps its output and serves it on
    ``runtimeDir/console.sock`` (node ``/Runner/SerialConsole``)."""
    guest_agent: bool = True
    """Add the virtio-serial channel ``org.qemu.guest_agent.0`` (socket
    ``runtimeDir/org.qemu.guest_agent.0``) for qemu-guest-agent."""
    audio: bool = True
    """With SPICE: a sound card whose audio goes through SPICE. Without SPICE nothing."""

    @model_validator(mode="before")
    @classmethod
    def _manager_forms(cls, data: Any) -> Any:
        """VM-Operator's forms: ``network``/``drives`` null = none; a topology value 0 =
        omitted; ``maximumCpus`` unset = derived (see the key's documentation)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in ("network", "drives"):
            if key in data and data[key] is None:
                data[key] = []
        for key in _TOPOLOGY_KEYS:
            if data.get(key) == 0 and not isinstance(data.get(key), bool):
                data[key] = None
        if "maximumCpus" not in data and "maximum_cpus" not in data:
            derived = _derived_maximum_cpus(data)
            if derived is not None:
                data["maximumCpus"] = derived
        return data

    @field_validator("maximum_ram")
    @classmethod
    def _at_least_one_mib(cls, value: int) -> int:
        if value < MIB:
            raise PydanticCustomError(
                "memory_size", "{size} is too small for a VM (at least 1 MiB)",
                {"size": format_memory(value)})
        return value

    @field_validator("current_ram")
    @classmethod
    def _below_maximum_ram(cls, value: int | None, info: ValidationInfo) -> int | None:
        maximum = info.data.get("maximum_ram")
        if value is not None and maximum is not None:
            if value > maximum:
                raise PydanticCustomError(
                    "too_large", "{cur} exceeds maximumRam ({max})",
                    {"cur": format_memory(value), "max": format_memory(maximum)},
                )
            if value < MIB:
                raise PydanticCustomError("too_small", "a balloon target below 1 MiB is unusable")
        return value

    @field_validator("maximum_cpus")
    @classmethod
    def _topology(cls, value: int, info: ValidationInfo) -> int:
        keys = ("sockets", "dies_per_socket", "cores_per_die", "threads_per_core")
        parts = [info.data.get(k) for k in keys]
        given = [p for p in parts if p is not None]
        if given:
            product = 1
            for p in given:
                product *= p
            if len(given) == len(parts) and product != value:
                raise PydanticCustomError(
                    "topology",
                    "{value} does not match the topology sockets*diesPerSocket*coresPerDie*"
                    "threadsPerCore = {product}",
                    {"value": value, "product": product},
                )
            if value % product:
                raise PydanticCustomError(
                    "topology",
                    "{value} is not a multiple of the topology's given values ({product}), so "
                    "QEMU cannot fill in the unset ones",
                    {"value": value, "product": product},
                )
        return value

    @field_validator("current_cpus")
    @classmethod
    def _below_maximum_cpus(cls, value: int | None, info: ValidationInfo) -> int | None:
        maximum = info.data.get("maximum_cpus")
        if value is not None and maximum is not None and value > maximum:
            raise PydanticCustomError(
                "too_large", "{cur} exceeds maximumCpus ({max})", {"cur": value, "max": maximum}
            )
        return value

    @field_validator("drives")
    @classmethod
    def _drive_set(cls, value: list[DriveConfig]) -> list[DriveConfig]:
        indexes = [d.bootindex for d in value if d.bootindex is not None]
        duplicates = sorted({i for i in indexes if indexes.count(i) > 1})
        if duplicates:
            raise PydanticCustomError(
                "bootindex", "bootindex {dup} used more than once", {"dup": duplicates[0]}
            )
        ide = [d for d in value if d.type == "ide-cd" and d.bus == "ide"]
        if len(ide) > IDE_PORTS:
            raise PydanticCustomError(
                "too_many", "at most {n} ide-cd drives fit on bus ide (use bus: scsi)",
                {"n": IDE_PORTS},
            )
        return value

    @property
    def effective_current_cpus(self) -> int:
        """``currentCpus``, defaulting to ``maximumCpus``."""
        return self.current_cpus if self.current_cpus is not None else self.maximum_cpus

    @property
    def effective_current_ram(self) -> int:
        """``currentRam``, defaulting to ``maximumRam``."""
        return self.current_ram if self.current_ram is not None else self.maximum_ram

    @property
    def wanted_user(self) -> str | None:
        """``display.loggedInUser``: the user to log in (``None``: logged out, also when
        there is no ``display`` section)."""
        return None if self.display is None else self.display.logged_in_user


class CloudInitConfig(_Model):
    """A cloud-init NoCloud data source, attached as a small ISO image labelled ``cidata``."""

    meta_data: dict[str, Any] = Field(default_factory=dict)
    """``meta-data``; ``instance-id`` defaults to ``v`` + a hash of the cloud-init data (so the
    guest re-runs its first-boot steps only when that data changes), ``local-hostname`` to
    ``vm.name``."""
    user_data: dict[str, Any] | None = None
    """``user-data``, written after a ``#cloud-config`` line (``{}`` when unset)."""
    network_config: dict[str, Any] | None = None
    """``network-config``; omitted from the image when unset."""


class RunnerConfig(_Model):
    """The ``/Runner`` node."""

    data_dir: ConfigPath | None = None
    """Persistent state (uuid.txt, fw-vars.fd, TPM state, the template copy); unset = the
    first path in ``$STATE_DIRECTORY`` (systemd), else ``$XDG_DATA_HOME/vmrunner/<vm.name>``,
    else ``/var/lib/vmrunner/<vm.name>`` for root, ``~/.local/share/vmrunner/<vm.name>`` for
    others. Created
    0700; an existing one must belong to the runner's user (nor may a directory above it, or
    an entry in it, belong to another user), else the start fails (exit 7); if others may
    write to it, it is made 0700 (a warning)."""
    runtime_dir: ConfigPath | None = None
    """Sockets and the cloud-init image; unset = the first path in ``$RUNTIME_DIRECTORY``
    (systemd), else ``$XDG_RUNTIME_DIR/vmrunner/<vm.name>``, else ``/run/vmrunner/<vm.name>``
    for root, else ``/run/<user>/vmrunner/<vm.name>`` if ``/run/<user>`` is (or can be made)
    writable, else ``/tmp/<user>/vmrunner/<vm.name>``. The same ownership rules as
    ``dataDir``; they also refuse a ``/tmp/<user>`` that another user created first."""
    template: str = "Standard-VM.yaml.mako"
    """The VM type: a template name looked up in ``templateDirs``, ``/opt/vmrunner/templates``
    and the templates shipped with vmrunner."""
    template_dirs: list[ConfigPath] = Field(default_factory=list)
    """Directories searched for ``template`` before the built-in ones."""
    update_template: bool = False
    """Re-copy the template into ``dataDir`` on every start (default: the copy saved on first
    start is reused, so a vmrunner upgrade does not change an existing VM)."""
    cloud_init: CloudInitConfig | None = None
    """Provide cloud-init data; unset = no cloud-init image."""
    guest_shutdown_stops: bool = False
    """VM-Operator: after the guest powers itself off (and the runner stopped cleanly), mark
    the VirtualMachine stopped (``spec.vm.state: Stopped``) so the manager does not start it
    again. Only meaningful in a cluster; the runner itself always exits when the guest powers
    off."""
    reset_counter: int | None = None
    """Increment it while the VM runs to reset the VM. A drop to 0 (VM-Operator's manager
    restarted) only sets the new baseline; a drop to a smaller positive value resets, too
    (the manager's 0 was not seen), see docs/guide/live-changes.md."""
    vm: VmConfig
    """The virtual machine (required)."""

    _config_dir: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _remember_config_dir(self, info: ValidationInfo) -> RunnerConfig:
        base = (info.context or {}).get("base_dir")
        if base is not None:
            self._config_dir = Path(base)
        return self

    @property
    def config_dir(self) -> Path | None:
        """The configuration file's directory (where VM-Operator's display secret appears),
        when the configuration was read from a file."""
        return self._config_dir

    @field_validator("template")
    @classmethod
    def _template_name(cls, value: str) -> str:
        parts = Path(value).parts
        if not value or Path(value).is_absolute() or ".." in parts:
            raise PydanticCustomError(
                "template_name",
                "'{value}': a template is a name relative to the template directories "
                "(no absolute path, no '..')",
                {"value": value},
            )
        return value
