"""The engine's parts around the pipeline that need no root: the shared counters block (what a
controller reads while the engine writes), the iovec arrays ``sendmmsg`` is given, and engine
configs derived from vrlab's own plans."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from vrlab import spec
from vrlab.engines.userspace.counters import PORT_FIELDS, CounterBlock, EngineCounters, block_size
from vrlab.engines.userspace.errors import CountersError, PlanEngineError
from vrlab.engines.userspace.forward import USERSPACE_REASONS
from vrlab.engines.userspace.fromplan import guest_config, shared_config
from vrlab.engines.userspace.rings import Transmitter, ring_geometry
from vrlab.plan import addressing, wiring
from vrlab.plan.transforms import kernel_forwarding_off, router_mac, with_router_macs

ROUTERS = ("r0", "r1", "r2")
PORTS = ("in", "out")


@pytest.fixture
def memfd() -> Iterator[int]:
    fd = os.memfd_create("test-counters")
    yield fd
    os.close(fd)


def test_counters_written_by_one_mapping_are_read_by_another(memfd: int) -> None:
    writer = CounterBlock.create(memfd, len(ROUTERS), len(PORTS))
    reader = CounterBlock.attach(memfd, len(ROUTERS), len(PORTS))
    zero = EngineCounters.from_block(reader, ROUTERS, PORTS)
    writer.begin()
    writer.verdicts[2, USERSPACE_REASONS.index("forwarded")] += 7  # r1 forwarded 7
    writer.verdicts[2, USERSPACE_REASONS.index("ttl_expired")] += 2
    writer.verdicts[0, USERSPACE_REASONS.index("other_host")] += 5  # for no router
    writer.ports[1, PORT_FIELDS.index("tx")] += 7
    writer.ports[0, PORT_FIELDS.index("rx_ring_drops")] += 3
    writer.end()
    now = EngineCounters.from_block(reader, ROUTERS, PORTS)
    d = now.minus(zero)
    assert d.forwarded == 7 and d.forwarded_by_router == {"r0": 0, "r1": 7, "r2": 0}
    assert d.drops["ttl_expired"] == 2 and d.drops["other_host"] == 5
    assert sum(d.drops.values()) == 7
    assert (d.tx, d.rx_ring_drops, d.tx_drops) == (7, 3, 0)
    assert d.ports["out"]["tx"] == 7
    assert os.fstat(memfd).st_size == block_size(len(ROUTERS), len(PORTS))
    writer.close()
    reader.close()


def test_a_reader_never_returns_a_half_written_update(memfd: int) -> None:
    """The writer moves two counters together; every snapshot must see them equal."""
    writer = CounterBlock.create(memfd, 1, 1)
    reader = CounterBlock.attach(memfd, 1, 1)
    done = threading.Event()

    def write() -> None:
        for _ in range(20000):
            writer.begin()
            writer.verdicts[1, 0] += 1
            writer.ports[0, 2] += 1
            writer.end()
        done.set()

    t = threading.Thread(target=write)
    t.start()
    reads = 0
    while not done.is_set() or reads < 10:
        _, v, p = reader.snapshot()
        assert v[1, 0] == p[0, 2]
        reads += 1
    t.join()
    assert reader.snapshot()[1][1, 0] == 20000


def test_a_block_stuck_mid_update_is_reported(memfd: int) -> None:
    block = CounterBlock.create(memfd, 1, 1)
    block.begin()  # an engine killed inside an update leaves the sequence odd
    with pytest.raises(CountersError, match="mid-update"):
        block.snapshot(timeout=0.05)


def test_a_block_of_another_shape_is_refused(memfd: int) -> None:
    CounterBlock.create(memfd, 2, 2)
    with pytest.raises(CountersError):
        CounterBlock.attach(memfd, 3, 2)


def test_transmitter_views_write_the_iovecs_sendmmsg_reads() -> None:
    tx = Transmitter(8)
    tx.base[:3] = [0x1000, 0x2000, 0x3000]
    tx.length[:3] = [60, 61, 1514]
    iov = tx._iov
    assert [(iov[i].iov_base, iov[i].iov_len) for i in range(3)] == [
        (0x1000, 60), (0x2000, 61), (0x3000, 1514)]
    msg = tx._msgs[2].msg_hdr
    assert ctypes.addressof(msg.msg_iov.contents) == ctypes.addressof(iov[2])
    assert msg.msg_iovlen == 1 and not msg.msg_name


def test_ring_geometry_lays_slots_end_to_end() -> None:
    block, blocks, size, frames = ring_geometry(4096, 2048)
    assert block * blocks == size * frames == 4096 * 2048
    assert ring_geometry(64, 8192)[:2] == (8192, 64)


# --------------------------------------------------------------------------- from plans


def test_shared_config_gives_each_router_its_table_and_mac() -> None:
    sc, _ = spec.load("native-routed", {"traffic.routers": 3})
    p = wiring.make_plan(sc, "ab12")
    with pytest.raises(PlanEngineError, match="share destination MACs"):
        shared_config(p)  # three routers on one MAC: the engine could not tell them apart
    p = with_router_macs(p)
    assert [r.dst_mac for r in p.traffic.routers] == [router_mac(i) for i in range(3)]
    cfg = shared_config(p, cpu=1, batch=512)
    assert cfg.ports == (p.sut_ingress, "vrlab12-sout") and cfg.cpu == 1 and cfg.batch == 512
    ts_mac = next(v.b_mac for v in p.veths if v.b == p.traffic.ts_dev)
    for i, r in enumerate(cfg.routers):
        assert [(x.port, x.mac) for x in r.interfaces] == [(p.sut_ingress, router_mac(i)),
                                                          ("vrlab12-sout", router_mac(i))]
        assert [(x.prefix, x.port, x.via_mac) for x in r.routes] == [
            (addressing.router_prefix(i), "vrlab12-sout", ts_mac)]


def test_shared_config_for_one_router_uses_the_ports_own_macs() -> None:
    sc, _ = spec.load("native-routed")
    p = wiring.make_plan(sc, "ab12")
    (r,) = shared_config(p).routers
    assert all(x.mac is None for x in r.interfaces)


def test_guest_config_serves_the_guests_router_on_its_veths() -> None:
    sc, _ = spec.load("guest-bridged", {"sut.guests": 2})
    p = wiring.make_plan(sc, "ab12")
    cfg = guest_config(p, "g2")
    assert cfg.ports == ("vrlab12-g2a", "vrlab12-g2b")
    (r,) = cfg.routers
    assert r.name == "r1" and r.routes[0].port == "vrlab12-g2b"
    with pytest.raises(PlanEngineError, match="no guest g3"):
        guest_config(p, "g3")
    off = kernel_forwarding_off(p, list(p.guest_ns))
    fwd = {(s.ns, s.value) for s in off.sysctls if s.key == "net/ipv4/ip_forward"}
    assert fwd == {(ns, "0") for ns in p.guest_ns} | {(p.sut_ns, "1")}  # the host's as it was


def test_counter_views_are_numpy_uint64(memfd: int) -> None:
    block = CounterBlock.create(memfd, 2, 1)
    assert block.verdicts.dtype == np.uint64 and block.verdicts.shape == (3, len(USERSPACE_REASONS))
