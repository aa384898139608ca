"""sendmmsg(2) through ctypes, shared by the traffic generator and the userspace engine's
transmitter: both hand the kernel prebuilt arrays of messages, one system call per batch
(Python's socket module has no sendmmsg). The packet-socket options both set live here too,
as the one copy of that piece of the kernel's ABI."""

from __future__ import annotations

import ctypes

#: <linux/if_packet.h>: the socket level and the option that skips the qdisc layer on send
SOL_PACKET = 263
PACKET_QDISC_BYPASS = 20


class Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(Iovec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", Msghdr), ("msg_len", ctypes.c_uint)]


_libc = ctypes.CDLL(None, use_errno=True)
sendmmsg = _libc.sendmmsg
sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
sendmmsg.restype = ctypes.c_int
