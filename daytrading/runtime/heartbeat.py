"""The heartbeat writer every long-running process runs (the supervisor reads the rows)."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

from daytrading.config.settings import PROJECT_ROOT
from daytrading.runtime.db_worker import DbWorker
from daytrading.runtime.stop import wait_or_stop
from daytrading.supervision.heartbeats import code_version, decode_detail
from observability import Database


@dataclass(slots=True)
class Heartbeat:
    """Writes this process's state to the heartbeats table at least every `interval` seconds.

    The detail may carry numbers (`daytrading.supervision.heartbeats.encode_detail`). A change of state
    or of the detail's text is written at once; a change of its numbers alone (prices move
    on every tick) waits for the next periodic beat, so a busy tape adds no writes.
    """

    db: Database
    process: str
    state: str = "starting"
    detail: str = ""
    interval: float = 1.0
    version: str = field(default_factory=lambda: code_version(PROJECT_ROOT))
    worker: DbWorker | None = None  # write through the process's database thread if given
    _text: str = field(default="", init=False, repr=False)  # the detail's human text

    def __post_init__(self) -> None:
        self._text = decode_detail(self.detail).text

    def set(self, state: str, detail: str = "") -> None:
        if state == self.state and detail == self.detail:
            return
        text = decode_detail(detail).text
        urgent = state != self.state or text != self._text
        self.state, self.detail, self._text = state, detail, text
        if urgent:
            self.beat()

    def beat(self) -> None:
        if self.worker is not None:
            self.worker.submit(self._write, self.state, self.detail)
            return
        self._write(self.state, self.detail)

    def _write(self, state: str, detail: str) -> None:
        try:
            self.db.beat(self.process, os.getpid(), state, detail=detail or None,
                         version=self.version)
        except Exception as exc:  # noqa: BLE001 - a missed beat must never kill the process
            logging.getLogger(self.process).warning("heartbeat write failed: %s", exc)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.beat()
            await wait_or_stop(stop, self.interval)
