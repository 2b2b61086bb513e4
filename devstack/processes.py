"""Small process helpers for the dev stack: liveness, ports, waiting, stopping."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request

import psutil


def pid_alive(pid: int | None) -> bool:
    """True if a process with this pid exists (and is not a zombie we own)."""
    if not pid or pid <= 0:
        return False
    try:
        # A zombie (exited, not yet reaped by an init that never reaps) is not alive.
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: object, timeout: float, interval: float = 0.2) -> bool:
    """Poll a zero-argument callable until it returns truthy or the timeout passes."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return bool(check())


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True if a GET on url answers with a 2xx/3xx status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return 200 <= status < 400
    except OSError:
        return False


def stop_process(pid: int, grace: float = 15.0) -> None:
    """SIGTERM the process (its group if it leads one), then SIGKILL after the grace time."""
    if not pid_alive(pid):
        return
    _signal(pid, signal.SIGTERM)
    if wait_until(lambda: not pid_alive(pid), grace):
        return
    _signal(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 5)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass
