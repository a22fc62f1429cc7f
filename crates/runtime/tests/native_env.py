"""gust_native.so's gust_set_trace_env (run by tests/trim.rs).

Usage: native_env.py LIBRARY. Sets _X_AMZN_TRACE_ID to 100,000 distinct values, as 100,000
invocations do: the environment must show the last one (to getenv and to a child process),
and the process must not grow by what glibc's setenv would keep (about 150 bytes a value,
15 MB here). NULL removes the variable. Prints "ok" when every rule holds.
"""
import ctypes
import resource
import subprocess
import sys

lib = ctypes.CDLL(sys.argv[1])
set_trace = lib.gust_set_trace_env
set_trace.argtypes = [ctypes.c_char_p]
set_trace.restype = ctypes.c_int
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
libc.getenv.argtypes = [ctypes.c_char_p]


def max_rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def value(i):
    return b"Root=1-67891233-abcdef012345678912345678;Parent=%016x;Sampled=1" % i


assert set_trace(value(0)) == 0
before = max_rss_kb()
for i in range(1, 100_000):
    assert set_trace(value(i)) == 0
grown = max_rss_kb() - before
last = value(99_999)
assert libc.getenv(b"_X_AMZN_TRACE_ID") == last, libc.getenv(b"_X_AMZN_TRACE_ID")
child = subprocess.run(["sh", "-c", 'printf %s "$_X_AMZN_TRACE_ID"'], capture_output=True, check=True, env=None)
assert child.stdout == last, child.stdout
assert grown < 2048, "the process grew by %d kB over 100,000 values" % grown
# A longer value than the buffers had, then removal.
assert set_trace(b"x" * 5000) == 0 and libc.getenv(b"_X_AMZN_TRACE_ID") == b"x" * 5000
assert set_trace(None) == 0 and libc.getenv(b"_X_AMZN_TRACE_ID") is None
print("grew", grown, "kB")
print("ok")
