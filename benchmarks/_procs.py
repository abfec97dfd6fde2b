"""Child processes for the harness: start (optionally pinned), wait until ready, stop, and
measure a process tree's CPU time and peak RSS from ``/proc``.

Linux only. Imports only the standard library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Child:
    """A started child process and the file its output goes to."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The child's pid (``taskset`` execs, so this is the program itself)."""
        return self.proc.pid

    def log_tail(self, limit: int = 2000) -> str:
        """The last ``limit`` characters of the child's output, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """``argv`` run under ``taskset -c cpus`` when ``cpus`` is set."""
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


def spawn(name: str, argv: Sequence[str], log_dir: Path, cpus: str | None, cwd: Path) -> Child:
    """Start ``argv`` in its own session with stdout and stderr going to a log file."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            pinned(argv, cpus),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,  # its own group: Ctrl-C reaches only us, we stop it
        )
    return Child(name, proc, log_path)


def stop(child: Child, grace_s: float = 10.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it lingers past ``grace_s``."""
    if child.proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """Whether ``GET url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(child: Child, url: str, timeout_s: float = 30.0) -> None:
    """Poll ``url`` until it answers 200; fail early if the child exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(
                f"{child.name} exited ({child.proc.returncode}):\n{child.log_tail()}"
            )
        if http_ok(url):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} not ready at {url} after {timeout_s}s:\n{child.log_tail()}")


def parent_map() -> dict[int, list[int]]:
    """Children of every live process, from ``/proc/<pid>/stat``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = read_stat(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def read_stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state is [0]); [] if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    children = parent_map()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU of ``pids``, plus that of their children already reaped."""
    ticks = 0
    for pid in pids:
        fields = read_stat(pid)
        if fields:
            # utime, stime, cutime, cstime are fields 14-17 of stat(5); here 11-14.
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


def status_kib(pid: int, key: str) -> int:
    """One ``kB`` value (such as ``VmHWM``) from ``/proc/<pid>/status``; 0 if gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def peak_rss_mib(pids: Iterable[int]) -> float:
    """Sum of ``VmHWM`` (peak resident set) over ``pids``, in MiB."""
    return sum(status_kib(pid, "VmHWM") for pid in pids) / 1024


def reset_peak_rss(pids: Iterable[int]) -> None:
    """Reset ``VmHWM`` to the current RSS (``clear_refs`` value 5), where allowed."""
    for pid in pids:
        # Where not allowed (old kernel, not our process) the peak covers the process's life.
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def machine_seconds() -> tuple[float, float]:
    """Busy and steal CPU time summed over all cores since boot, from ``/proc/stat``.

    Busy is user + nice + system + irq + softirq (guest time is already inside user).
    """
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS
