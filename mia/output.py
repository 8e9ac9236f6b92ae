"""How `mia` speaks: progress on a terminal, quiet in a pipe, one summary at the end, exit codes.

A command does its work through one `Run`:

    run = Run.start("import", args)              # args.json chooses the summary's form
    with run.progress("files", unit="file") as progress:
        for path in args.files:
            ...                                   # the work; progress.advance() per item
            run.detail(f"{path}: stored")         # a line of detail (left out under --json)
    return run.finish(ExitCode.OK, "imported 3 files", {"files": 3})

- Progress (tqdm) goes to standard error, and only when standard error is a terminal: a pipe, a
  file or a CI log gets none. Log lines written meanwhile are printed above the bar, not through it.
- `finish` prints the command's summary: one line on standard output, preceded on standard error
  by the retries the API calls needed (counted by shared/clients/retries.py, never one line per
  retry); with `--json` exactly one JSON object on standard output, the summary's data plus
  "command", "exit_code" and "retries".
- Shared code takes a `shared.model.progress.Progress`; `run.progress(...)` is one.
- `ExitCode` is the one list of exit codes; `EXIT_CODES_HELP` is what `mia --help` prints.
- When the reader of standard output goes away (`mia report ... | head`), the command stops there
  quietly with OUTPUT_CLOSED, as `cat` and `grep` do, instead of a traceback or "Broken pipe".

A new command adopts this by adding `--json` (`add_json_flag`), calling `Run.start` and ending
with `return run.finish(...)`.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import TYPE_CHECKING, Any, TextIO

from shared.clients.retries import PROCESS_RETRIES, RetryTally
from shared.model.progress import SILENT, Progress
from shared.reports import terminal

if TYPE_CHECKING:  # tqdm is loaded when a bar is drawn: a command that draws none starts faster
    from tqdm import tqdm


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # something failed for some inputs (a file unreadable, an API call refused)
    USAGE = 2  # usage or configuration error: nothing was done
    NOT_CAUGHT_UP = 3  # collect: stopped by its time budget before catching up; run again
    POISONED = 4  # process: queue messages moved to audit-content-poison
    MISMATCH = 5  # verify: a row does not match the evidence it names
    CHECK_FAILED = 6  # doctor: at least one check failed
    OUTPUT_CLOSED = 7  # the reader of standard output closed it: the output stops there


EXIT_CODE_MEANINGS = {
    ExitCode.OK: "done, nothing failed",
    ExitCode.FAILED: "something failed for some inputs (named on standard error); the rest was done",
    ExitCode.USAGE: "usage or configuration error; nothing was done",
    ExitCode.NOT_CAUGHT_UP: "collect stopped at its time budget before catching up: run it again",
    ExitCode.POISONED: "process moved queue messages to audit-content-poison (see mia replay-poison)",
    ExitCode.MISMATCH: "verify found a row that does not match its raw evidence",
    ExitCode.CHECK_FAILED: "doctor found a check that failed",
    ExitCode.OUTPUT_CLOSED: "standard output was closed by its reader (head, say): the output stops there",
}

EXIT_CODES_HELP = "exit codes:\n" + "".join(
    f"  {int(code)}  {meaning}\n" for code, meaning in EXIT_CODE_MEANINGS.items()
)


def stdout_reader_gone() -> bool:
    """Whether standard output is a pipe whose reader has closed it: poll reports POLLERR on the
    write end then (https://man7.org/linux/man-pages/man7/pipe.7.html). Where poll is missing
    (Windows) a broken pipe is taken to be standard output's."""
    if not hasattr(select, "poll"):
        return True
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(descriptor, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def discard_stdout() -> None:
    """Point standard output at the null device, so that the interpreter's last flush of what is
    still buffered does not fail on the closed pipe again ("Exception ignored ... BrokenPipeError";
    https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object instead of lines"
    )


class _Bar:
    """A tqdm bar as a Progress: its total grows as shared code finds more work."""

    def __init__(self, bar: tqdm[Any]) -> None:
        self._bar = bar

    def expect(self, more: int) -> None:
        if more:
            self._bar.total = (self._bar.total or 0) + more
            self._bar.refresh()

    def advance(self, done: int = 1) -> None:
        self._bar.update(done)


class Run:
    """One command's output: its progress, its detail lines and its one summary."""

    def __init__(
        self,
        command: str,
        *,
        as_json: bool,
        out: TextIO,
        err: TextIO,
        retries: RetryTally = PROCESS_RETRIES,
    ) -> None:
        self.command = command
        self.as_json = as_json
        self._out = out
        self._err = err
        self._retries = retries
        self._bar: tqdm[Any] | None = None

    @classmethod
    def start(cls, command: str, args: argparse.Namespace) -> Run:
        """The run of `command` on the process's standard streams; retries counted from now."""
        PROCESS_RETRIES.clear()
        return cls(command, as_json=bool(getattr(args, "json", False)), out=sys.stdout, err=sys.stderr)

    def on_terminal(self) -> bool:
        return self._err.isatty()

    @contextmanager
    def progress(self, what: str, unit: str = "it") -> Iterator[Progress]:
        """A bar on standard error when it is a terminal; SILENT otherwise."""
        if not self.on_terminal():
            yield SILENT
            return
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        with (
            logging_redirect_tqdm(),
            tqdm(desc=what, unit=unit, total=0, file=self._err, leave=False, dynamic_ncols=True) as bar,
        ):
            self._bar = bar
            try:
                yield _Bar(bar)
            finally:
                self._bar = None

    def detail(self, line: str) -> None:
        """A line of detail on standard output (above the bar); none under --json."""
        if not self.as_json:
            self._write(line, self._out)

    def problem(self, line: str) -> None:
        """A line on standard error, --json or not: what failed and why."""
        self._write(line, self._err)

    def _write(self, line: str, stream: TextIO) -> None:
        if self._bar is not None:
            self._bar.write(line, file=stream)
        else:
            print(line, file=stream, flush=True)

    def finish(self, code: ExitCode, summary: str, data: dict[str, Any]) -> int:
        """Print the summary (one line, or one JSON object) and return the exit code."""
        if self.as_json:
            whole = {"command": self.command, "exit_code": int(code), **data}
            whole["retries"] = self._retries.as_dict()
            print(json.dumps(whole), file=self._out, flush=True)
            return int(code)
        retried = self._retries.summary()
        if retried:
            print(f"retries: {terminal.visible(retried)}", file=self._err, flush=True)
        print(summary, file=self._out, flush=True)
        return int(code)
