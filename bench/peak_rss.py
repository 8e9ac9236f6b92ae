"""The peak memory of one command, measured three ways by a small launcher process.

`python -m bench.peak_rss --stdout F --stderr F -- COMMAND...` starts COMMAND, samples its RSS
every SAMPLE_SECONDS with psutil (and its VmHWM, the kernel's high-water mark of the command's own
address space, from /proc/PID/status), reaps it with os.wait4 for the kernel's `ru_maxrss`, and
prints one JSON object. The command's children (the processes of `mia report --input`'s pool) are
sampled too: `tree_peak_pss_sampled_bytes` is the peak of the whole tree's summed PSS (pages
shared between processes, as a forked child shares its parent's, counted once in all), and
`tree_peak_rss_sampled_bytes` the peak of its summed RSS (each process's shared pages counted in
each: an upper bound).

Why a launcher: on Linux a child's `ru_maxrss` includes the high-water mark of the image it was
forked (or vforked) from, carried across exec (see getrusage(2)), so started straight from the
bench, whose own peak is large, it would report the bench's memory. This launcher imports little,
so what it can add is its own few megabytes (`launcher_peak_rss_bytes` says how many).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs in requirements-dev

SAMPLE_SECONDS = 0.02
KIB = 1024


def vmhwm_bytes(pid: int | str) -> int:
    """VmHWM of a process (0 once it has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * KIB
    return 0


def tree_memory(process: psutil.Process) -> tuple[int, int]:
    """The summed RSS and PSS of `process` and its descendants (a process that exits meanwhile
    counts nothing)."""
    rss = pss = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            memory = member.memory_full_info()
        except psutil.Error:
            continue
        rss += memory.rss
        pss += memory.pss
    return rss, pss


class ChildSampler(threading.Thread):
    """The peak RSS and the last VmHWM of one running process, and the peak summed RSS and PSS of
    it and its descendants, sampled until it exits."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.pid = pid
        self.peak_rss = 0
        self.tree_rss = 0
        self.tree_pss = 0
        self.vmhwm = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:  # exited (or reaped) between two samples
                return
            self.vmhwm = max(self.vmhwm, vmhwm_bytes(self.pid))
            self.peak_rss = max(self.peak_rss, rss)
            tree_rss, tree_pss = tree_memory(self.process)
            self.tree_rss = max(self.tree_rss, tree_rss)
            self.tree_pss = max(self.tree_pss, tree_pss)
            self.samples += 1
            self.done.wait(SAMPLE_SECONDS)


def measure(command: list[str], stdout: Path, stderr: Path) -> dict[str, Any]:
    """Run `command`, its output to the two files; its peak memory three ways and its wall time."""
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err)
        sampler = ChildSampler(child.pid)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen.wait
        sampler.done.set()
        sampler.join()
    return {
        "returncode": child.returncode,
        "wall_seconds": round(wall, 3),
        "peak_rss_sampled_bytes": sampler.peak_rss,
        "vmhwm_sampled_bytes": sampler.vmhwm,
        "tree_peak_rss_sampled_bytes": sampler.tree_rss,
        "tree_peak_pss_sampled_bytes": sampler.tree_pss,
        "ru_maxrss_bytes": usage.ru_maxrss * KIB,  # KiB on Linux (getrusage(2))
        "rss_samples": sampler.samples,
        "sample_seconds": SAMPLE_SECONDS,
        "launcher_peak_rss_bytes": vmhwm_bytes("self"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peak_rss", description=__doc__)
    parser.add_argument("--stdout", type=Path, required=True)
    parser.add_argument("--stderr", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to measure")
    print(json.dumps(measure(command, args.stdout, args.stderr)))


if __name__ == "__main__":
    main()
