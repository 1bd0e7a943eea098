"""Opening the files the bridge reads as pstrain's checked readers do
(CheckpointStore.readRegularFile, CTRFile.open): a regular file only, its
size from fstat before a byte is read, so that a FIFO (which would block)
or a device such as /dev/zero (which never ends) is refused, not read."""

import os
import stat

from .errors import PstrainError


def open_regular(path, missing=None):
    """A binary file object of the regular file at `path` (a symbolic link
    is followed, as pstrain follows it), and its size; a PstrainError naming
    the path otherwise. `missing`: the message for a file that does not exist."""
    path = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before fstat refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError as e:
        raise PstrainError(missing or f"cannot read {path}: it does not exist") from e
    except OSError as e:
        raise PstrainError(f"cannot read {path}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PstrainError(f"{path} is not a regular file (a folder, FIFO, socket or device): it is not read")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, check_size, missing=None):
    """The bytes of the regular file at `path`, after `check_size(size)`
    (which raises to refuse) accepted its size from fstat: never more than
    that size is read or allocated."""
    f, size = open_regular(path, missing)
    with f:
        check_size(size)
        try:
            data = f.read(size)
        except OSError as e:
            raise PstrainError(f"cannot read {path}: {e.strerror}") from e
    if len(data) != size:
        raise PstrainError(f"{path} shrank from {size} to {len(data)} bytes while it was read")
    return data
