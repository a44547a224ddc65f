"""Progress of long work, for every layer that runs some (``sw``, ``verif``, ``gen``).

Three modes, chosen when a progress display starts:

* on a terminal (stderr is a tty): a tqdm bar on stderr, redrawn every second so that the elapsed
  time moves during a long step;
* otherwise (CI logs, pipes, pytest): one line per finished step on stderr, e.g.
  ``eval-smollm 3/30 rows [7 min 12 s]: dense int8: perplexity 8.160``;
* quiet (:func:`set_quiet`, ``mixpe <command> --quiet``): nothing.

API::

    from sw.progress import elapsed, progress

    for block in progress(blocks, "synth", unit="block"):   # one step per item
        ...

    with progress(total=len(rows), desc="eval-smollm", unit="row") as bar:
        log = bar.wrap(print)          # prints above the bar instead of through it
        log("carved S2A10E16 in 91 s")
        bar.step("dense int8: perplexity 8.160")   # one step done; the label says which

    with elapsed("verilator build mpgemm-1a2b3c"):     # one long step of unknown length
        build()                        # terminal: a ticking timer; otherwise one line when done

Progress goes to stderr, so stdout keeps only what the command prints; before a line goes out,
stdout is flushed so that both streams stay in order in a combined log. tqdm is imported only when
a bar is drawn.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator

__all__ = ["set_quiet", "progress", "elapsed", "Progress", "format_duration"]

#: Seconds between redraws of a bar while no step finishes.
REFRESH_SECONDS = 1.0

_quiet = False


def set_quiet(quiet: bool = True) -> None:
    """Silence (or restore) every progress display started from now on."""
    global _quiet
    _quiet = quiet


def format_duration(seconds: float) -> str:
    """``12.3 s``, ``7 min 12 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _mode() -> str:
    if _quiet:
        return "quiet"
    return "bar" if sys.stderr.isatty() else "lines"


def _line(text: str) -> None:
    sys.stdout.flush()
    print(text, file=sys.stderr, flush=True)


class Progress:
    """A progress display of ``total`` steps (None: unknown); use :func:`progress` to make one."""

    def __init__(self, iterable: Iterable | None = None, desc: str = "", total: int | None = None,
                 unit: str = "step", timer: bool = False):
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.desc, self.total, self.unit = iterable, desc, total, unit
        self.count = 0
        self.started = time.monotonic()
        self.mode = _mode()
        self._bar = None
        self._stop = threading.Event()
        if self.mode == "bar":
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                             bar_format="{desc}: {elapsed}" if timer else None)
            threading.Thread(target=self._redraw, args=(self._bar,), daemon=True).start()

    def _redraw(self, bar) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            bar.refresh()               # a closed bar ignores it

    def step(self, label: str = "") -> None:
        """One step done; ``label`` names it (bar: printed above the bar; lines: the line's text)."""
        self.count += 1
        if self.mode == "bar":
            if label:
                self._bar.write(label, file=sys.stdout)
            self._bar.update(1)
        elif self.mode == "lines":
            of = f"/{self.total}" if self.total is not None else ""
            units = self.unit + ("s" if (self.total or self.count) != 1 else "")
            _line(f"{self.desc} {self.count}{of} {units} [{format_duration(time.monotonic() - self.started)}]"
                  + (f": {label}" if label else ""))

    def wrap(self, log: Callable[..., object]) -> Callable[..., None]:
        """``log`` (e.g. ``print``) made to print above the bar rather than through it."""
        def clear_of_bar(*args, **kwargs) -> None:
            if self._bar is None:
                log(*args, **kwargs)
                return
            with self._bar.external_write_mode(file=sys.stdout):
                log(*args, **kwargs)
        return clear_of_bar

    def write(self, *args, **kwargs) -> None:
        """``print`` that keeps the bar intact."""
        self.wrap(print)(*args, **kwargs)

    def close(self) -> None:
        self._stop.set()
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.step()
        finally:
            self.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(iterable: Iterable | None = None, desc: str = "", *, total: int | None = None,
             unit: str = "step") -> Progress:
    """A progress display: iterate over it (one step per item), or use it as a context manager
    and call :meth:`Progress.step` after each step."""
    return Progress(iterable, desc, total, unit)


@contextlib.contextmanager
def elapsed(desc: str) -> Iterator[None]:
    """One long step: on a terminal a timer that ticks every second; otherwise one line when it
    ends (``desc: 83.2 s`` or ``desc: failed after 83.2 s``)."""
    mode, started = _mode(), time.monotonic()
    if mode == "bar":
        with Progress(desc=desc, timer=True):
            yield
        return
    try:
        yield
    except BaseException:
        if mode == "lines":
            _line(f"{desc}: failed after {format_duration(time.monotonic() - started)}")
        raise
    if mode == "lines":
        _line(f"{desc}: {format_duration(time.monotonic() - started)}")
