"""A one-line progress bar: step/total, percent, loss, tokens/s and ETA.

    [#######.............]  3500/10000  35%  loss 1.8342  12,400 tok/s  ETA 0:04:12

On a terminal (stream.isatty()) the line is redrawn in place with a carriage return at most every
`interval` seconds (0.1 by default); elsewhere (a log file, a pipe) a plain line is printed at most
every `interval` seconds (10 by default), so logs stay short. ETA = (total - step) · elapsed /
(steps done since the bar started); unknown totals show the step count alone.
"""
import sys
import time


def format_duration(seconds):
    """Seconds as H:MM:SS ('?' when unknown)."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class ProgressBar:
    """Redraws one line per update() on a TTY, or prints periodic plain lines otherwise."""

    def __init__(self, total=None, stream=None, interval=None, width=20, clock=time.monotonic):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.interval = interval if interval is not None else (0.1 if self.tty else 10.0)
        self.width, self.clock = width, clock
        self.t0, self.start_step, self.last_draw = clock(), None, None
        self.line, self.drawn, self.pending = "", False, None     # pending: an update not yet shown

    def text(self, step, loss=None, tokens_per_s=None):
        """The line for `step` (no newline, no carriage return)."""
        if self.start_step is None:
            self.start_step = step
        parts = []
        if self.total:
            frac = min(max(step / self.total, 0.0), 1.0)
            fill = int(frac * self.width)
            parts.append(f"[{'#' * fill}{'.' * (self.width - fill)}]")
            parts.append(f"{step:>{len(str(self.total))}}/{self.total}  {100 * frac:3.0f}%")
        else:
            parts.append(f"step {step}")
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        if tokens_per_s is not None:
            parts.append(f"{tokens_per_s:,.0f} tok/s")
        if self.total:
            done, elapsed = step - self.start_step, self.clock() - self.t0
            eta = (self.total - step) * elapsed / done if done > 0 else None
            parts.append(f"ETA {format_duration(eta)}")
        return "  ".join(parts)

    def update(self, step, loss=None, tokens_per_s=None, force=False):
        """Show the state at `step`, unless the last draw was under `interval` seconds ago."""
        now = self.clock()
        if self.start_step is None:
            self.start_step = step
        if not force and self.last_draw is not None and now - self.last_draw < self.interval:
            self.pending = (step, loss, tokens_per_s)
            return
        self.last_draw, self.pending = now, None
        line = self.text(step, loss, tokens_per_s)
        if self.tty:
            pad = " " * max(0, len(self.line) - len(line))     # erase the rest of a longer old line
            self.stream.write("\r" + line + pad)
        else:
            self.stream.write(line + "\n")
        self.line, self.drawn = line, True
        self.stream.flush()

    def write(self, message):
        """Print a message line without breaking the bar (the bar is redrawn on the next update)."""
        if self.tty and self.drawn:
            self.stream.write("\r" + " " * len(self.line) + "\r")
        self.stream.write(message + "\n")
        self.stream.flush()
        self.last_draw = None

    def close(self):
        """Show the last update if it was held back, and end the bar's line on a TTY."""
        if self.pending is not None:
            self.update(*self.pending, force=True)
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
        self.drawn = False
