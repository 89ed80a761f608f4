"""Processes the benchmark starts (the server, the read floor) and their memory.

Each service runs in its own session so that stopping it reaches its workers; only processes
started here are ever signalled.  Memory is sampled from /proc (RSS of the master and every
descendant), a thread polling at a fixed interval for the whole run.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A subprocess with its output in a log file; ``stop`` ends it and its workers."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
        self.name, self.log = name, log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, url: str, timeout_s: float = 60.0) -> bool:
        """Poll ``url`` until it answers 200, the process dies, or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        return False

    def stop(self, grace_s: float = 15.0) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the master and its workers
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._out.close()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _parent_map() -> dict[int, int]:
    parents = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: fields resume after the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(root: int) -> list[int]:
    parents = _parent_map()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:160]
    except OSError:
        return ""


@dataclass
class MemoryReport:
    samples: int = 0
    peak_mb: dict[int, float] = field(default_factory=dict)  # pid -> peak RSS
    last_mb: dict[int, float] = field(default_factory=dict)
    commands: dict[int, str] = field(default_factory=dict)
    root: int = 0

    def role(self, pid: int) -> str:
        if pid == self.root:
            return "master"
        # multiprocessing's resource tracker is a descendant too, serving no request.
        return "helper" if "resource_tracker" in self.commands.get(pid, "") else "worker"

    def workers(self) -> list[int]:
        """The processes that serve requests: the workers, or the root when it has none."""
        return [p for p in self.peak_mb if self.role(p) == "worker"] or [self.root]

    @property
    def max_worker_mb(self) -> float:
        return max((self.peak_mb.get(p, 0.0) for p in self.workers()), default=0.0)  # none sampled: 0

    def to_json(self) -> dict:
        return {
            "samples": self.samples,
            "max_worker_rss_mb": round(self.max_worker_mb, 1),
            "processes": [
                {"pid": p, "role": self.role(p), "peak_rss_mb": round(self.peak_mb[p], 1),
                 "last_rss_mb": round(self.last_mb.get(p, 0.0), 1), "cmd": self.commands.get(p, "")}
                for p in sorted(self.peak_mb)
            ],
        }


class RssSampler(threading.Thread):
    """Samples the RSS of ``root`` and its descendants every ``interval_s`` until stopped."""

    def __init__(self, root: int, interval_s: float = 0.5, max_samples: int = 100_000) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.report = MemoryReport(root=root)
        self.interval_s, self.max_samples = interval_s, max_samples
        self._stop_evt = threading.Event()

    def sample(self) -> None:
        rep = self.report
        for pid in descendants(rep.root):
            mb = rss_bytes(pid) / 2**20
            if mb <= 0:
                continue
            if pid not in rep.commands:
                rep.commands[pid] = cmdline(pid)
            rep.last_mb[pid] = mb
            rep.peak_mb[pid] = max(mb, rep.peak_mb.get(pid, 0.0))
        rep.samples += 1

    def run(self) -> None:
        while not self._stop_evt.is_set() and self.report.samples < self.max_samples:
            self.sample()
            self._stop_evt.wait(self.interval_s)

    def stop(self) -> MemoryReport:
        self._stop_evt.set()
        self.join(5)
        return self.report
