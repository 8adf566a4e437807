"""One progress display for a curation run: inputs decoded, clips per stage, clips/s, ETA.

The stage workers report finished rows to a `ProgressBoard` actor (ray_data.py); a driver
thread reads it about once a second and redraws one line on a terminal (or prints a line
every `every_s` seconds when the output is a file or a pipe), instead of Ray Data's log lines.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import IO, Iterator

# Short names for the display; a stage without one shows its registered name.
_SHORT = {"video_analysis": "analysed", "text_detection": "text", "captioning": "captions"}


def _duration(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def progress_line(stages: list[str], counts: dict[str, list[int]], inputs: int, committed: int,
                  clips_done: int, elapsed_s: float) -> str:
    """The display's text: e.g. ``decoded 3/10 inputs | analysed 12 · text 9 · quality 9 clips |
    written 2 inputs, 8 clips, 0.8 clips/s | ETA 1m05s``."""
    decoded = counts.get(stages[0], [0, 0])[0] if stages else 0
    per_stage = " · ".join(f"{_SHORT.get(s, s)} {counts.get(s, [0, 0])[1]}" for s in stages)
    rate = clips_done / elapsed_s if elapsed_s > 0 else 0.0
    # Decoding dominates and paces everything after it: the share of inputs decoded is the
    # most stable estimate of how far the run is.
    eta = "ETA --"
    if 0 < decoded < inputs:
        eta = f"ETA {_duration(elapsed_s * (inputs - decoded) / decoded)}"
    elif inputs and decoded >= inputs:
        eta = "finishing"
    return (f"decoded {decoded}/{inputs} inputs | {per_stage} clips | "
            f"written {committed} inputs, {clips_done} clips, {rate:.2f} clips/s | {eta} | {_duration(elapsed_s)}")


class ProgressDisplay:
    """Draws `progress_line` from a `ProgressBoard` actor until `close()`."""

    def __init__(self, stages: list[str], inputs: int, stream: IO[str] | None = None, every_s: float = 15.0):
        self.stages, self.inputs = stages, inputs
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s
        self.board = None
        self.committed = self.clips_done = 0
        self.counts: dict[str, list[int]] = {}
        self.start = time.perf_counter()
        self._last_print = 0.0
        self._width = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_polling(self, board) -> None:
        """Read `board` (a ProgressBoard actor handle) once a second in a daemon thread."""
        self.board = board
        self._thread = threading.Thread(target=self._poll, name="vidloom-progress", daemon=True)
        self._thread.start()

    def video_written(self, clips: int) -> None:
        """The driver committed one more input with `clips` ok clips to the manifest."""
        self.committed += 1
        self.clips_done += clips
        self._draw()

    def _poll(self) -> None:
        import ray

        while not self._stop.wait(1.0):
            try:
                self.counts = ray.get(self.board.snapshot.remote(), timeout=5)
            except Exception:  # noqa: BLE001 - a missed refresh only delays the display
                continue
            self._draw()

    def _draw(self, final: bool = False) -> None:
        now = time.perf_counter()
        line = progress_line(self.stages, self.counts, self.inputs, self.committed, self.clips_done, now - self.start)
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad + ("\n" if final else ""))
            self._width = len(line)
        elif final or now - self._last_print >= self.every_s:
            self.stream.write(line + "\n")
            self._last_print = now
        self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.board is not None:
            try:
                import ray

                self.counts = ray.get(self.board.snapshot.remote(), timeout=5)
            except Exception:  # noqa: BLE001 - the last line then shows the previous counts
                pass
        self._draw(final=True)


@contextmanager
def ray_output_to(log_path) -> Iterator[IO[str]]:
    """Send everything written to this process's stderr (file descriptor 2) to `log_path` for
    the duration, and yield a stream on the real stderr for the progress display.

    Ray writes to descriptor 2 from Python loggers, from Ray Data's executor and from its C++
    core worker (e.g. "Failed to kill actor" while tearing actors down), so only a redirect at
    the descriptor level keeps all of it off the user's console. The descriptor is restored
    before an exception leaves, so a failing run still shows its traceback.
    """
    import ray.data

    # The run draws its own progress line; Ray Data's bars would only be redirected noise.
    ray.data.DataContext.get_current().enable_progress_bars = False
    sys.stderr.flush()
    saved = os.dup(2)
    console = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        with open(log_path, "ab") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield console
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
        console.close()
