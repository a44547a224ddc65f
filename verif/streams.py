"""cocotb 2.x drivers for Amaranth ``lib.stream`` ports.

Amaranth flattens a stream member ``name`` into the Verilog ports ``<name>__payload`` (one flat
unsigned vector, whatever the payload layout), ``<name>__valid`` and ``<name>__ready``. A stream
declared ``always_valid`` / ``always_ready`` lacks the corresponding port; these components treat a
missing port as constant 1. Payloads are plain ints here: callers pack and unpack layouts.

Timing model (one coroutine per stream, all awaiting ``RisingEdge(clock)``):

* Signals are driven right after a rising edge (never in the ReadOnly phase, which cocotb 2 forbids).
* ``valid & ready`` is sampled in the ReadOnly phase of a cycle, i.e. the values the DUT sees at the
  next rising edge, where the transfer takes effect.
* When no transfer can happen (a sink seeing ``valid`` low, a source seeing ``ready`` low) the
  coroutine sleeps on the edge of that signal instead of waking every cycle.

Rules honoured by :class:`StreamSource` (Amaranth stream rules): ``valid`` does not wait for
``ready``; once ``valid`` is high, ``valid`` and ``payload`` hold until the transfer.

Do not ``send()`` while the DUT is in reset if its ``ready`` is combinational: the source would count
a transfer the DUT drops. Start sending after reset.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable, Iterable

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, ReadOnly, RisingEdge

__all__ = ["StreamSource", "StreamSink", "random_stalls", "periodic_throttle", "stream_width"]


def _never() -> bool:
    return False


def random_stalls(rng: random.Random, probability: float) -> Callable[[], bool]:
    """A stall generator for :class:`StreamSource` ``idle`` / :class:`StreamSink` ``pause``.

    Each call returns True with ``probability``; 0 means never stall (and the components then skip the
    per-cycle draw entirely).
    """
    if not 0.0 <= probability < 1.0:
        raise ValueError(f"stall probability must be in [0, 1), got {probability!r}")
    if probability == 0.0:
        return _never
    rand = rng.random
    return lambda: rand() < probability


def periodic_throttle(pattern: list[int], beat_bits: int, period_steps: int) -> Callable[[], bool]:
    """An ``idle`` generator for :class:`StreamSource` that models a link delivering ``pattern[c mod P]``
    bits in cycle c into an unbounded buffer: payload i (``beat_bits`` each) is presented from the
    cycle by whose end ``(i + 1) * beat_bits`` bits have arrived (:class:`golden.memory.Throttle`).
    Cycle 0 is the first cycle a payload could transfer in; ``period_steps`` is the clock period
    in simulator steps."""
    prefix = [0]
    for bits in pattern:
        prefix.append(prefix[-1] + bits)
    state = {"origin": None, "presented": 0}

    def delivered(cycles: int) -> int:
        periods, rest = divmod(cycles, len(pattern))
        return periods * prefix[-1] + prefix[rest]

    def idle() -> bool:
        now = get_sim_time("step") // period_steps
        if state["origin"] is None:
            state["origin"] = now
        if delivered(now - state["origin"] + 1) < (state["presented"] + 1) * beat_bits:
            return True
        state["presented"] += 1
        return False
    return idle


def _normalise(fn: Callable[[], bool] | None) -> Callable[[], bool] | None:
    return None if fn is None or fn is _never else fn


def _port(dut, name: str, suffix: str, *, required: bool):
    full = f"{name}__{suffix}"
    try:
        return getattr(dut, full)
    except AttributeError:
        if required:
            raise AttributeError(f"DUT {dut._name!r} has no port {full!r} (stream {name!r})") from None
        return None


def _in_readonly() -> bool:
    try:  # private in cocotb 2.1; only used to avoid an illegal write after a wake-up from ReadOnly.
        from cocotb._gpi_triggers import current_gpi_trigger
        return isinstance(current_gpi_trigger(), ReadOnly)
    except Exception:  # pragma: no cover - API moved; assume a normal phase
        return False


def stream_width(dut, name: str) -> int:
    """Bit width of ``<name>__payload``."""
    return len(_port(dut, name, "payload", required=True))


class StreamSource:
    """Drives an Amaranth stream *into* the DUT (DUT port direction ``In``).

    ``idle()`` is called before presenting each payload; while it returns True the source keeps
    ``valid`` low for one more cycle (random idle insertion).
    """

    def __init__(self, dut, name: str, clock, idle: Callable[[], bool] | None = None):
        self.name = name
        self._clock = clock
        self._payload = _port(dut, name, "payload", required=True)
        self._valid = _port(dut, name, "valid", required=False)
        self._ready = _port(dut, name, "ready", required=False)
        if self._valid is None:
            raise ValueError(f"stream {name!r} is always_valid; a StreamSource cannot drive it")
        self.width = len(self._payload)
        self._idle_fn = _normalise(idle)
        self._queue: collections.deque[int] = collections.deque()
        self._wake = Event()
        self._idle = Event()
        self._idle.set()
        self.transfers = 0
        self._valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, payload: int) -> None:
        """Queue one payload (an unsigned int that fits the payload width)."""
        payload = int(payload)
        if payload < 0 or payload >> self.width:
            raise ValueError(f"{self.name}: payload {payload:#x} does not fit in {self.width} unsigned bits")
        self._queue.append(payload)
        self._idle.clear()
        self._wake.set()

    def send_many(self, payloads: Iterable[int]) -> None:
        for p in payloads:
            self.send(p)

    @property
    def pending(self) -> int:
        """Payloads queued or being presented, not yet transferred."""
        return len(self._queue)

    async def wait_idle(self) -> None:
        """Wait until every queued payload has been transferred."""
        await self._idle.wait()

    def stop(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        clock, valid, payload_sig, ready = self._clock, self._valid, self._payload, self._ready
        queue, idle_fn = self._queue, self._idle_fn
        valid_high = False
        while True:
            if not queue:
                if valid_high:
                    valid.value = 0
                    valid_high = False
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                if _in_readonly():
                    await RisingEdge(clock)
                continue
            # Here writes are legal: just after a rising edge, or where send() was called.
            if idle_fn is not None and idle_fn():
                if valid_high:
                    valid.value = 0
                    valid_high = False
                await RisingEdge(clock)
                continue
            payload_sig.value = queue[0]
            if not valid_high:
                valid.value = 1
                valid_high = True
            if ready is not None:
                while True:
                    await ReadOnly()
                    if ready.value == 1:
                        break
                    await RisingEdge(ready)  # sleep until the consumer raises ready
            await RisingEdge(clock)  # the transfer happens at this edge
            queue.popleft()
            self.transfers += 1


class StreamSink:
    """Consumes an Amaranth stream *out of* the DUT (DUT port direction ``Out``).

    ``ready`` is low in a cycle when ``pause()`` returns True (drawn once per cycle while ``valid`` is
    high). Each transfer calls ``callback(payload, cycle)`` right after the rising edge it happened at
    (normal phase, so the callback may drive signals); ``cycle`` is ``sim_time // clock_period``, the
    same numbering for every sink. Without a callback, transfers are appended to ``received``.
    The first two clock cycles measure the clock period (``ready`` is held low meanwhile).
    """

    def __init__(self, dut, name: str, clock, pause: Callable[[], bool] | None = None,
                 callback: Callable[[int, int], None] | None = None):
        self.name = name
        self._clock = clock
        self._payload = _port(dut, name, "payload", required=True)
        self._valid = _port(dut, name, "valid", required=False)
        self._ready = _port(dut, name, "ready", required=False)
        self.width = len(self._payload)
        self._pause_fn = _normalise(pause)
        if self._ready is None and self._pause_fn is not None:
            raise ValueError(f"stream {name!r} is always_ready; a StreamSink cannot apply back-pressure")
        self.received: list[tuple[int, int]] = []
        self._callback = callback if callback is not None else (lambda p, c: self.received.append((p, c)))
        self.transfers = 0
        self.period_steps: int | None = None
        if self._ready is not None:
            self._ready.value = 0
        self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        clock, valid, payload_sig, ready_sig = self._clock, self._valid, self._payload, self._ready
        pause_fn = self._pause_fn
        await RisingEdge(clock)
        t0 = get_sim_time("step")
        await RisingEdge(clock)
        period = get_sim_time("step") - t0
        self.period_steps = period
        ready = None
        while True:
            # Just after a rising edge (or after valid rose): decide ready for this cycle.
            want = True if pause_fn is None else not pause_fn()
            if want is not ready and ready_sig is not None:
                ready_sig.value = int(want)
            ready = want
            await ReadOnly()
            if valid is None or valid.value == 1:
                if ready:
                    data = payload_sig.value.to_unsigned()
                    await RisingEdge(clock)
                    self.transfers += 1
                    self._callback(data, get_sim_time("step") // period)
                else:
                    await RisingEdge(clock)
                continue
            # valid is low: nothing can transfer until the producer raises it.
            await RisingEdge(valid)
