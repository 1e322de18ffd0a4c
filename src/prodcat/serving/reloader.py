"""Hot reload: follow the registry's champion alias without ever blocking a request.

A new version is loaded in a worker thread, off the request path, then swapped in with one
assignment. Requests read the current model once, so those in flight finish on the old one.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable

from prodcat.config import Settings
from prodcat.serving import metrics
from prodcat.serving.model_store import LoadedModel, ModelUnavailable, freeze_heap
from prodcat.serving.state import ModelState

log = logging.getLogger(__name__)
REFUSED_RETRY_POLLS = 20  # 10 minutes at the default 30 s interval


def probe_champion_version(settings: Settings) -> str | None:
    """The version the champion alias points at now (None when there is none)."""
    from prodcat.training.registry import get_champion

    version = get_champion(settings)
    return version.version if version else None


class ModelReloader:
    freeze_delay = 5.0  # seconds for requests in flight during a swap to finish

    def __init__(
        self,
        state: ModelState,
        settings: Settings,
        loader: Callable[[Settings], LoadedModel],
        probe: Callable[[Settings], str | None] = probe_champion_version,
    ):
        self.state, self.settings, self.loader, self.probe = state, settings, loader, probe
        self._lock = asyncio.Lock()
        self._freeze: asyncio.Task | None = None
        self._skipped = 0  # polls that skipped the refused version since it was last tried

    async def run_forever(self) -> None:
        """Poll every reload_interval_seconds until cancelled."""
        while True:
            await asyncio.sleep(self.settings.api.reload_interval_seconds)
            await self.reload_if_changed()

    async def reload_if_changed(self, force: bool = False) -> bool:
        """Load and swap in the champion when its version changed; True when swapped."""
        async with self._lock:
            try:
                wanted = await asyncio.to_thread(self.probe, self.settings)
                current = self.state.current
                if wanted is None or not (force or self.is_worth_loading(wanted)):
                    return False
                loaded = await asyncio.to_thread(self.loader, self.settings)
            except Exception as error:  # keep serving the model we have
                if isinstance(error, ModelUnavailable):  # from the loader, not the probe
                    self.note_refusal(error.refused)
                metrics.RELOAD_FAILURES.inc()
                log.warning("model reload failed, still serving the current model: %s", error)
                return False
            self.note_refusal(loaded.refused)
            if current and loaded.source != "registry" and loaded.version == current.version:
                metrics.RELOAD_FAILURES.inc()  # the champion was refused: nothing to swap
                self.state.detail = loaded.note
                return False
            previous = self.state.current
            self.state.current, self.state.detail = loaded, loaded.note  # the atomic swap
            metrics.RELOADS.inc()
            metrics.MODEL_LOADED.set(1)
            if previous is not None:
                # Set to 0 rather than removed: with several workers the value lives in a file.
                metrics.MODEL_INFO.labels(previous.version, previous.source).set(0)
            metrics.MODEL_INFO.labels(loaded.version, loaded.source).set(1)
            log.info("now serving version %s (was %s)", loaded.version,
                     previous.version if previous else None)  # fmt: skip
            # The previous model goes back in the collector's sight now, and the heap is
            # frozen again once the requests still using it have finished.
            gc.unfreeze()
            if self._freeze is not None:
                self._freeze.cancel()
            self._freeze = asyncio.create_task(self._freeze_later())
            return True

    def is_worth_loading(self, wanted: str) -> bool:
        """A version other than the one served; a refused one only every
        REFUSED_RETRY_POLLS polls (its files may be repaired meanwhile, and each worker
        keeps its own memory of refusals), not downloaded again on every poll."""
        current = self.state.current
        if current is not None and current.version == wanted:
            return False
        if wanted != self.state.refused:
            return True
        self._skipped += 1
        return self._skipped % REFUSED_RETRY_POLLS == 0

    def note_refusal(self, version: str | None) -> None:
        """Remember the champion version the last load refused (None: it refused none)."""
        if version is not None and version != self.state.refused:
            log.warning("version %s refused; retried every %d polls, when the alias moves, "
                        "or on POST /admin/reload", version, REFUSED_RETRY_POLLS)  # fmt: skip
            self._skipped = 0
        self.state.refused = version

    def stop(self) -> None:
        """Cancel the pending freeze, if any (at shutdown)."""
        if self._freeze is not None:
            self._freeze.cancel()

    async def _freeze_later(self) -> None:
        await asyncio.sleep(self.freeze_delay)
        await asyncio.to_thread(freeze_heap)
