"""The one reader and the one writer of files on disk: regular files only, bounded, atomic.

Reading: only a regular file is opened (a FIFO, a device such as ``/dev/zero`` or
``/dev/urandom``, a folder or a socket is refused before it is opened, so nothing
can block or stream forever), and at most :data:`MAX_FILE_BYTES` are read.

Writing: the text goes to a temporary file in the target's folder, is flushed to
disk and renamed over the target, so readers see the old file or the new one.
Only a regular file (or a new name) is a target: a device, FIFO, folder or socket
is refused, as is any file the caller protects (the instance and the files it
reads). A symbolic link is written *through*: the file it points to is replaced
and the link is kept, as a shell's ``>`` or an editor would do; a link that points
to nothing is refused. Signals that end the process (SIGTERM, SIGHUP, SIGINT)
arriving during the write are held until the write has finished or been undone,
so no temporary file is left behind, then delivered as they would have been.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["MAX_FILE_BYTES", "UnsafeFileError", "read_regular_bytes", "check_output_target", "write_atomic",
           "file_kind"]

# Every file llmplace reads (instances, config files, plans) is at most this large: the
# largest instance within the size limits (2,000 devices, 100,000 links) is a few MiB.
MAX_FILE_BYTES = 16 * 2**20

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))
# Signals whose default ends the process; held while a plan file is being replaced.
_HELD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name))


class UnsafeFileError(ValueError):
    """A path that is not a regular file (or is protected, empty, too large) for this use."""


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words: ``a regular file``, ``a folder``, ``a FIFO (named pipe)``, ...

    Examples
    --------
    >>> file_kind(os.stat("/dev/null").st_mode)
    'a character device'
    """
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def _path_text(path: str | os.PathLike[str]) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"a file path must be a str or os.PathLike, got {type(path).__name__}")
    text = os.fspath(path)
    if text == "":
        raise UnsafeFileError("the file name is empty")
    if "\0" in text:
        raise UnsafeFileError(f"the file name {text!r} contains a NUL byte")
    return text


def read_regular_bytes(path: str | os.PathLike[str], limit_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path`` (symbolic links followed), at most ``limit_bytes``.

    Raises
    ------
    UnsafeFileError
        If ``path`` is empty, holds a NUL byte, is not a regular file (checked before
        opening it and again on the opened file), or is larger than ``limit_bytes``.
    OSError
        If the file does not exist or cannot be read.

    Examples
    --------
    >>> read_regular_bytes("/dev/zero")
    Traceback (most recent call last):
    ...
    placement.safefiles.UnsafeFileError: is a character device, not a regular file
    """
    text = _path_text(path)
    # stat first: opening a device can have effects of its own (a tape rewinds), and a FIFO blocks.
    _require_regular(os.stat(text).st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(text, flags)
    try:
        st = os.fstat(fd)  # the file actually opened, in case the name was swapped in between
        _require_regular(st.st_mode)
        if st.st_size > limit_bytes:
            raise UnsafeFileError(_too_large(st.st_size, limit_bytes))
        chunks, total = [], 0
        while total <= limit_bytes:  # bounded even when the size reported was wrong (/proc files say 0)
            chunk = os.read(fd, min(1 << 20, limit_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit_bytes:
            raise UnsafeFileError(_too_large(total, limit_bytes))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _require_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise UnsafeFileError(f"is {file_kind(mode)}, not a regular file")


def _too_large(size: int, limit: int) -> str:
    return (f"is larger than {limit // 2**20} MiB ({size:,} bytes or more); files llmplace reads are at most "
            f"{limit // 2**20} MiB")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_target(path: str | os.PathLike[str], protected: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """Where a file written to ``path`` would go, after checking it may be replaced.

    Returns the real path the text would replace: ``path`` itself, or the file a
    symbolic link points to (links are written through).

    Raises
    ------
    UnsafeFileError
        If ``path`` is empty or holds a NUL byte; is, or is a link to, anything but a
        regular file (a device, FIFO, folder, socket), or a link to nothing; is one of
        the ``protected`` files (compared after resolving links, and by identity, so a
        hard link or another spelling of the name is caught); or its folder does not exist.

    Examples
    --------
    >>> check_output_target("/dev/null")
    Traceback (most recent call last):
    ...
    placement.safefiles.UnsafeFileError: /dev/null is a character device; only a regular file is replaced
    """
    text = _path_text(path)
    if text.endswith((os.sep, os.altsep or os.sep)):  # realpath would drop the slash and make a file
        raise UnsafeFileError(f"{text} names a folder (it ends with {text[-1]}); give a file name")
    target = Path(os.path.realpath(text))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        if os.path.islink(text):
            raise UnsafeFileError(f"{text} is a symbolic link to {target}, which does not exist; "
                                  "give the file itself") from None
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        via = f" (the symbolic link {text} points to it)" if os.path.islink(text) else ""
        raise UnsafeFileError(f"{target if via else text} is {file_kind(mode)}{via}; only a regular file is replaced")
    for source in protected:
        source_text = os.fspath(source)
        if target == Path(os.path.realpath(source_text)) or mode is not None and _same_file(target, source_text):
            also = "" if os.path.realpath(text) == os.path.realpath(source_text) == os.path.abspath(text) \
                else f" ({source_text})"
            raise UnsafeFileError(f"{text} is a file the instance is read from{also}; the instance is never "
                                  "overwritten, nor any file it reads")
    if not target.parent.is_dir():
        raise UnsafeFileError(f"folder {target.parent} does not exist")
    return target


def write_atomic(path: str | os.PathLike[str], text: str | bytes, protected: Iterable[str | os.PathLike[str]] = ()
                 ) -> None:
    """Replace the regular file at ``path`` with ``text`` (or bytes, e.g. a picture), so readers see the
    old file or the new one.

    The text goes to a temporary file in the same folder, is flushed to disk, and
    then renamed over the target (a rename within one file system is atomic). A
    symbolic link is written through (the file it points to is replaced, the link
    kept). If anything fails the temporary file is removed and the old file is left
    as it was; SIGTERM, SIGHUP and SIGINT are held until then (from the main
    thread, where Python runs signal handlers). A replaced file keeps its permissions.

    Raises
    ------
    UnsafeFileError
        If the target is not a regular file or a new name, or is protected (see
        :func:`check_output_target`); checked again just before the rename.
    OSError
        If the folder cannot be written (the old file is then left as it was).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_atomic(folder / "plan.json", "{}\\n")
    >>> (folder / "plan.json").read_text()
    '{}\\n'
    """
    protected = tuple(protected)
    target = check_output_target(path, protected)
    with _signals_held():
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with (os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", encoding="utf-8")) as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, _mode_for(target))
            # The name may have been replaced by something else since the first check.
            if check_output_target(path, protected) != target:
                raise UnsafeFileError(f"{os.fspath(path)} changed while the plan was written; nothing replaced")
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _sync_folder(target.parent)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM, SIGHUP and SIGINT for the duration, then deliver the first one that came.

    A handler (not a blocked signal mask) is used, so the signal is caught whichever
    thread the kernel delivers it to. Signals the process ignores stay ignored.
    Outside the main thread Python cannot install handlers; nothing is held there.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous: dict[int, object] = {}
    for signum in _HELD_SIGNALS:
        old = signal.getsignal(signum)
        if old is signal.SIG_IGN or old is None:  # ignored, or set outside Python: leave it alone
            continue
        previous[signum] = old
        signal.signal(signum, lambda got, _frame: arrived.append(got))
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)  # type: ignore[arg-type]
        if arrived:
            signal.raise_signal(arrived[0])


def _mode_for(target: Path) -> int:
    """The old file's permissions, or those a new file gets under the umask (mkstemp's are 0600)."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _sync_folder(folder: Path) -> None:
    """Make the rename durable; not every platform lets a folder be opened for this."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
