"""Keras, imported once, with the native start-up log lines of its backend filtered out.

TensorFlow's C++ start-up writes lines such as ``I0000 ... port.cc] oneDNN custom operations are
on``, ``cudart_stub.cc] Could not find cuda drivers`` and ``E0000 ... failed call to cuInit ... (303)``
straight to file descriptor 2 *before* its logging reads ``TF_CPP_MIN_LOG_LEVEL``, so the variable
cannot silence them: on every machine without a GPU they appear in the terminal and inside executed
notebooks and look like failures. Here the backend is imported (and its devices listed, which is
when cuInit runs) with descriptor 2 redirected to a temporary file; afterwards the known start-up
notices are dropped and anything else that was written -- a real error -- is passed on to stderr.
Later messages follow ``TF_CPP_MIN_LOG_LEVEL`` (default here 2: warnings and errors of TensorFlow's
own logging: only errors stay visible).

Every module of pedgm_kit imports Keras from here (``from ._backend import keras``).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

__all__ = ["NOISE", "keras", "quiet_native_stderr"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The inter-op thread pool is NOT fixed here: deterministic training sets it to one thread when it starts
# (pedgm_kit.train.set_determinism, before TensorFlow's runtime is initialised), and deterministic=False
# keeps TensorFlow's default pool, so the two settings really differ. Export TF_NUM_INTEROP_THREADS to
# impose a value on every run of a process.

#: Lines the backend's start-up writes that are notices, not failures.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+\] .*"  # absl INFO / WARNING lines
    r"|E\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+\] .*(cuInit|cuda|CUDA|GPU).*"  # no GPU on this machine
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.)$"
)


@contextlib.contextmanager
def quiet_native_stderr():
    """Capture what native code writes to descriptor 2; re-emit all but the :data:`NOISE` lines."""
    fd = 2  # the descriptor native code writes to (Jupyter kernels replace sys.stderr, not descriptor 2)
    try:
        saved = os.dup(fd)
    except OSError:  # no descriptor 2 at all
        yield
        return
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines()
                    if line.strip() and not NOISE.match(line)]
            if kept:
                os.write(fd, ("\n".join(kept) + "\n").encode())


with quiet_native_stderr():
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as _tf

        _tf.config.list_physical_devices()  # platform start-up (cuInit) happens now, inside the filter
