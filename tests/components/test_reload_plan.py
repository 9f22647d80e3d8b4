"""The reload plan's classifier (issue 5, item 8): every changed key, classified."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vmrunner.config.model import RunnerConfig
from vmrunner.config.reload_plan import classify, describe
from vmrunner.events.config import REDACTED, PlanClass, PlanEntry

MIB = 1024 * 1024


def config(**vm: Any) -> RunnerConfig:
    runner = vm.pop("runner", {})
    return RunnerConfig.model_validate({"vm": {"name": "vm1", **vm}, **runner})


def only(entries: tuple[PlanEntry, ...]) -> PlanEntry:
    assert len(entries) == 1, entries
    return entries[0]


def test_no_change_no_entries() -> None:
    assert classify(config(maximumRam="1 GiB"), config(maximumRam=1024 * MIB)) == ()


def test_maximum_ram_needs_restart() -> None:
    entry = only(classify(config(maximumRam="1 GiB"), config(maximumRam="2 GiB")))
    assert (entry.path, entry.old, entry.new) == ("/Runner/vm/maximumRam", 1024 * MIB,
                                                  2048 * MIB)
    assert entry.klass is PlanClass.RESTART
    assert describe(entry) == ("/Runner/vm/maximumRam: 1 GiB → 2 GiB: needs restart "
                                "(QEMU's -m is fixed for the life of the process)")


def test_adding_a_disk_needs_restart() -> None:
    old = config(drives=[{"file": "/d0.img"}])
    new = config(drives=[{"file": "/d0.img"}, {"file": "/d1.img", "readOnly": True}])
    entry = only(classify(old, new))
    assert entry.path == "/Runner/vm/drives/1" and entry.old is None
    assert entry.new["file"] == "/d1.img" and entry.new["readOnly"] is True
    assert entry.klass is PlanClass.RESTART and "added" in entry.reason
    assert "needs restart" in describe(entry)
    removed = only(classify(new, old))
    assert removed.klass is PlanClass.RESTART and "removed" in removed.reason


def test_live_keys() -> None:
    old = config(maximumRam="1 GiB", maximumCpus=4, currentCpus=2, powerdownTimeout=60,
                 runner={"resetCounter": 1})
    new = config(maximumRam="1 GiB", currentRam="512 MiB", maximumCpus=4, currentCpus=3,
                 powerdownTimeout=5, onPanic="pause", runner={"resetCounter": 2})
    entries = classify(old, new)
    assert {e.path: e.klass for e in entries} == {
        "/Runner/resetCounter": PlanClass.LIVE,
        "/Runner/vm/currentRam": PlanClass.LIVE,
        "/Runner/vm/currentCpus": PlanClass.LIVE,
        "/Runner/vm/powerdownTimeout": PlanClass.LIVE,
        "/Runner/vm/onPanic": PlanClass.LIVE,
    }
    ram = next(e for e in entries if e.path == "/Runner/vm/currentRam")
    assert "(unset) → 512 MiB: live" in describe(ram)


def test_cd_medium_is_live_a_disk_file_is_not() -> None:
    cd = {"type": "ide-cd", "file": "/a.iso"}
    old = config(drives=[cd, {"file": "/d.img"}])
    new = config(drives=[{**cd, "file": "/b.iso", "forceAfter": 5}, {"file": "/e.img"}])
    assert {e.path: e.klass for e in classify(old, new)} == {
        "/Runner/vm/drives/0/file": PlanClass.LIVE,
        "/Runner/vm/drives/0/forceAfter": PlanClass.LIVE,
        "/Runner/vm/drives/1/file": PlanClass.RESTART,
    }
    emptied = only(classify(old, config(drives=[{"type": "ide-cd"}, {"file": "/d.img"}])))
    assert emptied.klass is PlanClass.LIVE and emptied.new is None


def test_cd_becoming_a_disk_needs_restart() -> None:
    old = config(drives=[{"type": "ide-cd", "file": "/a.iso"}])
    new = config(drives=[{"type": "raw", "file": "/a.iso"}])
    assert {e.klass for e in classify(old, new)} == {PlanClass.RESTART}
    assert {e.path for e in classify(old, new)} == {  # a CD is read-only and on ide
        "/Runner/vm/drives/0/type", "/Runner/vm/drives/0/bus", "/Runner/vm/drives/0/readOnly"}


def test_structural_changes_are_one_entry_each() -> None:
    old = config()
    new = config(display={"spice": {"port": 5901}}, network=[], firmware="bios")
    assert {e.path: e.klass for e in classify(old, new)} == {
        "/Runner/vm/display": PlanClass.RESTART,
        "/Runner/vm/firmware": PlanClass.RESTART,
        "/Runner/vm/network/0": PlanClass.RESTART,
    }


def test_logged_in_user_is_live() -> None:
    """Login, switch and logout go through the guest's vmop agent (issue 14); the rest of
    the display stays a restart, and so does a display that appears with a user in it."""
    alice = config(display={"loggedInUser": "alice"})
    for old, new in ((config(display={}), alice),
                     (alice, config(display={"loggedInUser": "bob"})),
                     (alice, config(display={}))):
        entry = only(classify(old, new))
        assert entry.path == "/Runner/vm/display/loggedInUser"
        assert entry.klass is PlanClass.LIVE and "vmop agent" in entry.reason
    assert describe(only(classify(alice, config(display={})))).startswith(
        "/Runner/vm/display/loggedInUser: 'alice' → (unset): live")
    both = classify(alice, config(display={"loggedInUser": "bob", "outputs": 2}))
    assert {e.path: e.klass for e in both} == {
        "/Runner/vm/display/loggedInUser": PlanClass.LIVE,
        "/Runner/vm/display/outputs": PlanClass.RESTART,
    }
    assert only(classify(config(), alice)).klass is PlanClass.RESTART  # the card is new


def test_cloud_init_values_are_redacted() -> None:
    old = config(runner={"cloudInit": {"userData": {"password": "hunter2"}}})
    new = config(runner={"cloudInit": {"userData": {"password": "swordfish"}}})
    entry = only(classify(old, new))
    assert entry.path == "/Runner/cloudInit/userData/password"
    assert entry.old == entry.new == REDACTED and entry.klass is PlanClass.RESTART
    assert "hunter2" not in describe(entry) and "swordfish" not in describe(entry)


# -- properties over generated configurations ---------------------------------------------

DRIVES = st.sampled_from([
    {"type": "ide-cd", "file": "/a.iso"}, {"type": "ide-cd", "file": "/b.iso"},
    {"type": "ide-cd"}, {"type": "ide-cd", "file": "/a.iso", "forceAfter": 3},
    {"file": "/d0.img"}, {"file": "/d1.img", "readOnly": True}, {"device": "/dev/vg/x"},
])


@st.composite
def configs(draw: st.DrawFn) -> RunnerConfig:
    maximum_cpus = draw(st.sampled_from([1, 2, 4]))
    vm: dict[str, Any] = {
        "name": draw(st.sampled_from(["a", "b"])),
        "maximumRam": draw(st.sampled_from(["256 MiB", "512 MiB"])),
        "maximumCpus": maximum_cpus,
        "powerdownTimeout": draw(st.sampled_from([0, 60, 900])),
        "onPanic": draw(st.sampled_from(["reset", "stop", "pause"])),
        "firmware": draw(st.sampled_from(["bios", "uefi"])),
        "bootMenu": draw(st.booleans()),
        "drives": draw(st.lists(DRIVES, max_size=3)),
        "network": draw(st.sampled_from(
            [[], [{"type": "user"}], [{}, {"mac": "52:54:00:00:00:01"}]])),
        "cpuFeatures": draw(st.lists(st.sampled_from(["+ssse3", "-vmx"]), max_size=2)),
    }
    if draw(st.booleans()):
        vm["currentRam"] = draw(st.sampled_from(["128 MiB", "200 MiB"]))
    if draw(st.booleans()):
        vm["currentCpus"] = draw(st.integers(1, maximum_cpus))
    if draw(st.booleans()):
        vm["display"] = {"spice": {"port": draw(st.sampled_from([5900, 5901]))}}
        user = draw(st.sampled_from([None, "alice", "bob"]))
        if user is not None:
            vm["display"]["loggedInUser"] = user
    runner: dict[str, Any] = {}
    if draw(st.booleans()):
        runner["resetCounter"] = draw(st.integers(0, 3))
    if draw(st.booleans()):
        runner["cloudInit"] = {"userData": {"secret": draw(st.sampled_from(["s1", "s2"]))}}
    return RunnerConfig.model_validate({"vm": vm, **runner})


def leaves(value: Any, path: str = "/Runner") -> dict[str, Any]:
    """Independent flattening: every scalar by key path (empty containers have none)."""
    found: dict[str, Any] = {}
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            found.update(leaves(item, f"{path}/{key}"))
    else:
        found[path] = value
    return found


def under(path: str, entry: PlanEntry) -> bool:
    return path == entry.path or path.startswith(entry.path + "/")


@settings(max_examples=300, deadline=None)
@given(configs(), configs())
def test_every_changed_leaf_is_in_exactly_one_entry(old: RunnerConfig,
                                                    new: RunnerConfig) -> None:
    entries = classify(old, new)
    a = leaves(old.model_dump(mode="json", by_alias=True))
    b = leaves(new.model_dump(mode="json", by_alias=True))
    changed = {p for p in a.keys() | b.keys() if p not in a or p not in b or a[p] != b[p]}
    for path in changed:
        assert sum(under(path, e) for e in entries) == 1, (path, entries)
    for entry in entries:  # and nothing unchanged is listed
        assert any(under(path, entry) for path in changed), entry
    assert (entries == ()) == (old == new)


@settings(max_examples=300, deadline=None)
@given(configs(), configs())
def test_classes_follow_the_rules(old: RunnerConfig, new: RunnerConfig) -> None:
    entries = classify(old, new)
    for entry in entries:
        assert entry.klass is not PlanClass.NEXT_BOOT  # no key takes effect at next boot
        key = entry.path.rsplit("/", 1)[-1]
        if entry.path in ("/Runner/vm/currentRam", "/Runner/vm/currentCpus",
                          "/Runner/vm/powerdownTimeout", "/Runner/resetCounter",
                          "/Runner/vm/onPanic",
                          "/Runner/vm/display/loggedInUser"):
            assert entry.klass is PlanClass.LIVE
        elif entry.path.startswith("/Runner/vm/drives/") and key in ("file", "forceAfter"):
            index = int(entry.path.split("/")[4])
            cd = old.vm.drives[index].type == new.vm.drives[index].type == "ide-cd"
            assert entry.klass is (PlanClass.LIVE if cd else PlanClass.RESTART)
        else:
            assert entry.klass is PlanClass.RESTART, entry
        if entry.path.startswith("/Runner/cloudInit"):
            assert REDACTED in (entry.old, entry.new)
    swapped = {e.path: (e.new, e.old, e.klass) for e in classify(new, old)}
    assert swapped == {e.path: (e.old, e.new, e.klass) for e in entries}
