"""Ctrl-C and SIGTERM stop training cleanly: the handler only sets a flag; the loop checks it after each
optimizer step, saves a checkpoint and returns. A second signal raises KeyboardInterrupt at once.

Under torchrun every rank gets the signal, maybe between different steps; `stop_agreed` makes all ranks
stop after the same step (a MAX all-reduce of the flags), so no rank waits forever in a collective.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """Set by SIGINT/SIGTERM while installed (main thread only), or by `request()` (tests, callers)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def request(self) -> None:
        self.requested = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, without the checkpoint
        log.warning("%s received: stopping after this step and saving a checkpoint (again to abort)",
                    signal.Signals(signum).name)
        self.requested = True

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def stop_agreed(self, device: torch.device) -> bool:
        """True on every rank when any rank's flag is set (a collective under torchrun)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self.requested
        flag = torch.tensor([int(self.requested)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self.requested = bool(flag.item())
        return self.requested
