"""The ``/proc`` readers of the metrics (:mod:`vmrunner.proc.procfs`) on real
processes and a real tap device: CPU time grows with work done, RSS matches the kernel's
``VmRSS``, a tun/tap descriptor a process holds names its interface, and a vanished process
gives ``None``, never an exception."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from vmrunner.proc import procfs

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_cpu_times_of_a_process_and_of_one_thread() -> None:
    pid = os.getpid()
    before = procfs.cpu_times(pid)
    tid: list[int] = []

    def work() -> None:
        tid.append(threading.get_native_id())
        _burn(0.3)

    worker = threading.Thread(target=work)
    worker.start()
    while not tid:
        time.sleep(0.001)
    thread_times = procfs.cpu_times(pid, tid[0])
    worker.join()
    after = procfs.cpu_times(pid)
    assert before is not None and after is not None and thread_times is not None
    assert after.user + after.system - before.user - before.system >= 0.25
    assert thread_times.user + thread_times.system <= 0.35  # the thread's own time, no more


def test_resident_bytes_matches_vmrss_and_grows() -> None:
    pid = os.getpid()
    before = procfs.resident_bytes(pid)
    block = bytearray(64 * 2**20)  # touched: resident
    after = procfs.resident_bytes(pid)
    assert before is not None and after is not None
    assert after - before >= 60 * 2**20
    del block


def test_a_vanished_process_gives_none() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert procfs.cpu_times(child.pid) is None
    assert procfs.resident_bytes(child.pid) is None
    assert procfs.tap_interfaces(child.pid) == []
    assert procfs.nic_counters(child.pid) == {}


def test_a_tap_descriptor_names_its_interface() -> None:
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as exc:
        pytest.skip(f"/dev/net/tun: {exc.strerror}")
    try:
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"vrtest%d", IFF_TAP | IFF_NO_PI))
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EACCES):
                pytest.skip("no CAP_NET_ADMIN to create a tap device")
            raise
        names = procfs.tap_interfaces(os.getpid())
        assert len(names) == 1 and names[0].startswith("vrtest")
        counters = procfs.nic_counters(os.getpid())
        assert set(counters[names[0]]) == set(procfs.NIC_COUNTERS)
    finally:
        os.close(fd)
    assert procfs.tap_interfaces(os.getpid()) == []


def test_loopback_counters_move() -> None:
    before = procfs.nic_counters(os.getpid())["lo"]
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"x" * 10_000)
    after = procfs.nic_counters(os.getpid())["lo"]
    assert after["tx_bytes"] - before["tx_bytes"] >= 10_000
    assert after["rx_packets"] > before["rx_packets"]
