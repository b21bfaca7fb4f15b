"""Entry point for gunicorn: `gunicorn webapp.wsgi:server`."""
import ctypes
import ctypes.util

from webapp.app import create_app

# glibc's M_MMAP_THRESHOLD (mallopt parameter -3) and the size from which a block gets its own mapping.
_M_MMAP_THRESHOLD = -3
_OWN_MAPPING_FROM = 1 << 20


def _return_large_blocks_to_the_system() -> None:
    """Give every block of 1 MiB or more (an upload's JSON, its base64, a decoded image) its own mapping.

    By default glibc raises this threshold after each large free, up to 32 MiB, so the next upload's big
    buffers land on the heap, whose freed pages a web worker may keep for good: after three identical
    rounds of hostile uploads (tests/hardening) the web server held 233, 223, 225 MiB, and 276, 268, 302 MiB
    in a full-suite run on a loaded machine; with the threshold fixed, 187, 191, 191 MiB. Other C
    libraries are left alone.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return
    libc = ctypes.CDLL(name)
    if hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, _OWN_MAPPING_FROM)


_return_large_blocks_to_the_system()
app = create_app()
server = app.server
