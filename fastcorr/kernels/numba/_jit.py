"""Compilation helpers shared by the numba kernels.

* :func:`jit`, the one decorator every kernel uses: ``njit`` with an on-disk
  cache where a cache directory is writable, and silently in memory where
  none is (read-only installs, sandboxes); the cache is keyed on the source
  of the whole backend, not just the function's file;
* :func:`stack_empty`, a fixed-size scratch array on the stack, which is how
  the register-blocked kernels get their accumulator tiles into registers;
* :func:`fetch_add`, an atomic counter with which the parallel drivers hand
  out tasks dynamically;
* :func:`borrowed`, an array without reference counting, for drivers whose
  inner loops pass arrays and views around.
"""

from __future__ import annotations

import functools
import hashlib
import pathlib

import numba
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# Only flags that cannot change NaN/Inf propagation: fusing a*b+c into one FMA
# ('contract') changes rounding in the last bit, never which results are NaN.
FASTMATH = frozenset({"contract"})


class _TolerantCache:
    """Wraps a dispatcher's cache so that I/O errors turn caching off, not the call.

    numba checks that a cache directory is writable when the function is
    decorated, but loading or saving can still fail later (a directory made
    read-only meanwhile, an index file owned by another user).  A kernel must
    still run then, just without the disk cache.
    """

    def __init__(self, cache):
        self._cache = cache
        self._broken = False

    def __getattr__(self, name):
        return getattr(self._cache, name)

    def load_overload(self, sig, target_context):
        if self._broken:
            return None
        try:
            return self._cache.load_overload(sig, target_context)
        except Exception:  # unreadable, truncated or foreign cache file: recompile
            self._broken = True
            return None

    def save_overload(self, sig, data):
        if self._broken:
            return
        try:
            self._cache.save_overload(sig, data)
        except OSError:
            self._broken = True


@functools.cache
def _backend_source_stamp() -> bytes:
    """A hash of every module of this backend.

    numba keys a function's disk cache on its own file only, but a compiled
    driver also contains the workers it calls and the module constants it
    read (tile sizes) from the other files here: with that key, changing
    ``_microkernel.py`` would leave stale, wrong drivers in the cache.  Keyed
    on the whole backend, any change recompiles everything.
    """
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.digest()


def jit(*, parallel: bool = False, inline: str = "never", fastmath=FASTMATH):
    """``numba.njit`` with ``cache=True`` where possible, in-memory otherwise.

    Parameters
    ----------
    parallel : bool, default False
        Compile ``prange`` loops as parallel loops (the drivers).
    inline : {'never', 'always'}, default 'never'
        numba-level inlining; the register-blocked workers are inlined so that
        LLVM sees the accumulator tile and the loops around it together.
    fastmath : set of str, default ``{'contract'}``
        LLVM fast-math flags; never 'nnan'/'ninf'/'fast', which would let the
        compiler drop NaN and Inf handling.

    Returns
    -------
    callable
        A decorator producing a numba dispatcher; nothing is compiled until
        the first call.
    """
    options = dict(parallel=parallel, inline=inline, fastmath=set(fastmath), nogil=True)

    def decorate(func):
        try:
            dispatcher = numba.njit(cache=True, **options)(func)
        except RuntimeError:
            # numba raises "cannot cache function ...: no locator available"
            # when neither NUMBA_CACHE_DIR, __pycache__ nor the user cache
            # directory is writable: compile in memory instead.
            return numba.njit(cache=False, **options)(func)
        cache = getattr(dispatcher, "_cache", None)
        cache_file = getattr(cache, "_cache_file", None)
        if hasattr(cache_file, "_source_stamp"):  # numba internals; else keep numba's key
            cache_file._source_stamp = (cache_file._source_stamp, _backend_source_stamp())
        if cache is not None:
            dispatcher._cache = _TolerantCache(cache)
        return dispatcher

    return decorate


@intrinsic
def stack_empty(typingctx, size, dtype):
    """An uninitialised buffer of ``size`` elements of ``dtype`` on the stack.

    ``size`` must be a compile-time constant (a module-level int).  Returns a
    pointer; wrap it with ``numba.carray(ptr, shape)``.  Unlike ``np.empty``
    the buffer is an ``alloca`` in the function's entry block, so once its
    indices are constants (fully unrolled loops) LLVM promotes the elements
    to registers: this is how a kernel keeps an accumulator tile in registers.
    """
    if not isinstance(size, types.IntegerLiteral):
        return None
    count = size.literal_value
    element_type = dtype.dtype

    def codegen(context, builder, signature, args):
        llvm_type = context.get_value_type(element_type)
        return cgutils.alloca_once(builder, llvm_type, size=count)

    return types.CPointer(element_type)(size, dtype), codegen


@intrinsic
def fetch_add(typingctx, counter, increment):
    """Atomically add ``increment`` to ``counter[0]`` (an int64 array); return the old value.

    The drivers hand out tasks with it (dynamic scheduling): a thread that
    the OS delays on a busy machine then simply takes fewer tasks, instead
    of holding up the whole parallel region as a static split would.
    """
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        value = context.cast(builder, args[1], signature.args[1], types.int64)
        return builder.atomic_rmw("add", array.data, value, "monotonic")

    return types.int64(counter, increment), codegen


@intrinsic
def borrowed(typingctx, array):
    """``array`` without its reference count: the same data, shape and strides.

    numba counts references to every array it passes to a function or
    slices, with an atomic add and subtract.  Where a loop calls workers
    per short row that adds up to more than the row's work: in C4's max
    pooling, a ``perf`` profile put 70 % of the time in ``NRT_incref`` and
    ``NRT_decref`` (about 14 pairs per 112-element row, some 3 ns each).  The result, and every view
    taken of it, has no count to update.  It must not outlive ``array``:
    use it inside one call only, and return the original.
    """
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        view = context.make_array(signature.args[0])(context, builder, value=args[0])
        view.meminfo = context.get_constant_null(types.MemInfoPointer(types.voidptr))
        return view._getvalue()

    return array(array), codegen
