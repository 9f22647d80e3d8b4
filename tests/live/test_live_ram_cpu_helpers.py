"""The pure parts of the RAM and vCPU controllers: the tolerance and the slot naming."""

from __future__ import annotations

from vmrunner.components.cpus import slot_id, slot_key
from vmrunner.config.sizes import MIB, ram_tolerance, reached


def test_tolerance_is_one_percent_but_at_least_8_mib() -> None:
    assert ram_tolerance(160 * MIB) == 8 * MIB
    assert ram_tolerance(4096 * MIB) == 4096 * MIB // 100
    assert reached(160 * MIB, 168 * MIB) and reached(160 * MIB, 152 * MIB)
    assert not reached(160 * MIB, 168 * MIB + 1)
    assert not reached(160 * MIB, None)


def test_slots_are_ordered_by_topology_and_named_stably() -> None:
    # as query-hotpluggable-cpus lists them (highest first) for -smp 2,maxcpus=4,sockets=2
    slots = [{"type": "max-x86_64-cpu", "vcpus-count": 1,
              "props": {"core-id": c, "thread-id": 0, "socket-id": s}}
             for s, c in ((1, 1), (1, 0), (0, 1), (0, 0))]
    ordered = sorted(slots, key=slot_key)
    assert [slot_id(s) for s in ordered] == ["cpu-s0-c0-t0", "cpu-s0-c1-t0", "cpu-s1-c0-t0",
                                             "cpu-s1-c1-t0"]
    assert slot_id({"props": {"node-id": 1, "socket-id": 0, "die-id": 0, "core-id": 3,
                              "thread-id": 1}}) == "cpu-n1-s0-d0-c3-t1"
