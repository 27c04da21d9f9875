"""Console output of long work: log lines on stderr that do not break tqdm progress bars.

Per-evaluation lines go through the ``mmoe`` logger; stdout is left to what a command prints as
its result (a table, or JSON that ``json.loads`` must accept).
"""

from __future__ import annotations

import logging
import sys

from tqdm.auto import tqdm

LOGGER_NAME = "mmoe"


class _TqdmHandler(logging.Handler):
    """Writes records through ``tqdm.write`` on stderr, above any active progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # a failing log line must not stop training
            self.handleError(record)


def enable_console_logging(level: int = logging.INFO) -> None:
    """Show ``mmoe`` log lines on stderr (once; later calls only change the level)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(isinstance(h, _TqdmHandler) for h in logger.handlers):
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
