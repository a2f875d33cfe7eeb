"""The scripts' error boundary: every failure a user can cause ends in one line on stderr and exit status 2.

    @entry_point
    def main(argv=None) -> int: ...

A user causes a failure with a bad file or value (ValueError: CheckpointError, ClassError, DataError, ImageError,
…), a missing file or key (FileNotFoundError, KeyError), the file system (a full disk, an unwritable or read-only
folder: OSError), a missing optional dependency (ImportError, whose message names the extra), a run that diverges
(TrainingDiverged, a FloatingPointError), or a batch that does not fit in memory (XLA's RESOURCE_EXHAUSTED). Each
is printed as `error: <what went wrong and what to do>`; Ctrl-C prints `interrupted` and exits 130. Anything else
is a bug in nestgen and keeps its traceback.

While a script runs, orbax's background save threads are kept from printing their own tracebacks and log errors
around that one line: the failure still reaches the main thread (orbax re-raises it when the save is waited for),
and is reported there once.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import sys
import threading
import warnings

_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")
_LOCAL_FILE = re.compile(r'local file "([^"]+)"')
USER_ERRORS = (ValueError, LookupError, OSError, ImportError, FloatingPointError)

_ADVICE = {
    errno.ENOSPC: "no space left on the device: free some space or write somewhere else",
    errno.EDQUOT: "the disk quota is used up: free some space or write somewhere else",
    errno.EACCES: "permission denied: choose a file or folder you may use",
    errno.EPERM: "operation not permitted: choose a file or folder you may use",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.EISDIR: "is a folder where a file was expected",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENAMETOOLONG: "the file name is too long",
}


def describe(error: BaseException) -> str:
    """One line for a user-caused error: the message, or for a system error the file and what to do."""
    if isinstance(error, OSError) and error.errno is not None:
        where = f" ({error.filename})" if error.filename else ""
        advice = _ADVICE.get(error.errno) or (error.strerror or str(error))
        if isinstance(error, FileNotFoundError):
            advice = "no such file or folder"
        return f"{advice}{where}; nothing that existed before was changed" if error.errno in (
            errno.ENOSPC, errno.EDQUOT) else f"{advice}{where}"
    code = _OS_ERROR_CODE.search(str(error))  # tensorstore (orbax) reports system errors inside a ValueError
    if code and int(code.group(1)) in _ADVICE:
        path = _LOCAL_FILE.search(str(error))
        return describe(OSError(int(code.group(1)), "", path.group(1) if path else None))
    if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
        message = error.args[0]  # str(KeyError) would quote it
    else:
        message = str(error) or type(error).__name__
    return message.strip()


def _out_of_memory(error: BaseException) -> bool:
    return type(error).__name__ == "XlaRuntimeError" and "RESOURCE_EXHAUSTED" in str(error)


class _BackgroundNoise(logging.Filter):
    """Drop orbax's (and absl's) error records, which repeat the failure the main thread reports."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        if "orbax" in record.pathname:  # orbax's own error logs (through absl)
            return False
        # asyncio's "Task exception was never retrieved" for orbax's write tasks, printed when they are collected
        return not (record.name == "asyncio" and "orbax" in record.getMessage())


@contextlib.contextmanager
def quiet_background_errors(keep_after_failure: bool = True):
    """Within the block: uncaught exceptions of background threads are not printed, and orbax's error log records
    are dropped; the main thread still sees and reports the failure. If the block fails and `keep_after_failure`
    (a script, which reports the failure and ends), everything stays quiet until the process exits."""
    previous_hook, noise = threading.excepthook, _BackgroundNoise()
    threading.excepthook = lambda args: None
    loggers = [logging.getLogger(), logging.getLogger("asyncio")]
    try:  # orbax logs through absl's logger: take absl's own (creating a plain "absl" logger first would break it)
        from absl import logging as absl_logging
    except ImportError:
        pass
    else:
        loggers.append(absl_logging.get_absl_logger())
    for logger in loggers:
        logger.addFilter(noise)
        for handler in logger.handlers:
            handler.addFilter(noise)
    previous_stderr = sys.stderr
    if keep_after_failure:  # a script's own process: its stderr
        sys.stderr = _WithoutClosedLoopTracebacks(previous_stderr)
    try:
        yield
    except BaseException:
        if keep_after_failure:  # the filters stay: late reports of this failure stay quiet until exit
            # the write coroutines a failed orbax save abandoned are collected at exit ("never awaited")
            warnings.filterwarnings("ignore", r"coroutine .* was never awaited", RuntimeWarning)
            raise
        _restore(previous_hook, previous_stderr, loggers, noise)
        raise
    _restore(previous_hook, previous_stderr, loggers, noise)


class _WithoutClosedLoopTracebacks:
    """stderr without the tracebacks tensorstore's native write callbacks print (not through any hook) after a
    failed orbax save, when they find orbax's event loop closed (`RuntimeError: Event loop is closed`). Several
    threads print them at the same time, interleaved with each other and with the script's own error line, so
    each thread's text is followed on its own: from a "Traceback" line on it is held until that traceback's last
    line, then dropped if that line is the closed-loop RuntimeError and written whole otherwise. All other text is
    written at once."""

    _START, _CLOSED = "Traceback (most recent call last):", "RuntimeError: Event loop is closed"

    def __init__(self, stream):
        self._stream, self._lock = stream, threading.Lock()
        self._threads: dict[int, list] = {}  # thread → [partial line, held lines]

    def write(self, text: str) -> int:
        with self._lock:
            state = self._threads.setdefault(threading.get_ident(), ["", []])
            if not state[0] and not state[1] and not text.startswith(self._START):
                return self._stream.write(text)
            state[0] += text
            *lines, state[0] = state[0].split("\n")
            for line in lines:
                self._line(state, line)
            return len(text)

    def _line(self, state: list, line: str) -> None:
        held = state[1]
        if not held and line != self._START:  # text between tracebacks
            self._stream.write(line + "\n")
            return
        held.append(line + "\n")
        if line and not line[0].isspace() and line != self._START and not line.startswith(
                ("During handling of the above exception", "The above exception was the direct cause")):
            if line != self._CLOSED:  # a traceback's last line: a real error is written whole
                self._stream.write("".join(held))
            held.clear()

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name):  # fileno, isatty, encoding, …
        return getattr(self._stream, name)


def _restore(previous_hook, previous_stderr, loggers, noise) -> None:
    threading.excepthook = previous_hook
    sys.stderr = previous_stderr
    for logger in loggers:
        logger.removeFilter(noise)
        for handler in logger.handlers:
            handler.removeFilter(noise)


def _flush_output() -> None:
    """Write out what the script printed now, so a full disk behind stdout (`> /dev/full`) is reported like any
    other; after a failure stdout goes to /dev/null, so the interpreter's exit does not trip over it again."""
    try:
        sys.stdout.flush()
    except OSError as error:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        raise OSError(error.errno, error.strerror, "the standard output") from error


def entry_point(main):
    """Decorate a script's `main(argv=None) -> int`: user-caused failures → `error: …` on stderr, return 2."""

    @functools.wraps(main)
    def run(argv=None) -> int:
        try:
            with quiet_background_errors(keep_after_failure=main.__module__ == "__main__"):  # a script's process
                status = main(argv)
                _flush_output()
                return status
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except USER_ERRORS as error:
            print(f"error: {describe(error)}", file=sys.stderr)
            return 2
        except RuntimeError as error:
            if not _out_of_memory(error):
                raise
            print("error: out of memory (XLA: RESOURCE_EXHAUSTED): use a smaller batch", file=sys.stderr)
            return 2

    return run


def moved(old: str, new: str) -> None:
    """A command that has a new form: one line naming it on stderr, exit status 2 (nothing else runs)."""
    print(f"error: {old} is now `{new}` (same options): run that instead", file=sys.stderr)
    raise SystemExit(2)
