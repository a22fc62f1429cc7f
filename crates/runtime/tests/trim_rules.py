"""What gust_native.so's trim gives back, and what it must keep (run by tests/trim.rs).

Usage: trim_rules.py LIBRARY SCRATCH_DIR. Maps one scratch file twice, privately: once
read-only and only read (its pages must be given back, and read back the same), once written
and then made read-only, as RELRO is (its pages are the only copy of what was written: they
must be kept). Prints "ok" when every rule holds; an assertion error otherwise.
"""
import ctypes, os, sys, tempfile

PAGE = os.sysconf("SC_PAGE_SIZE")
PROT_READ, PROT_WRITE, MAP_PRIVATE = 1, 2, 2
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
trim = ctypes.CDLL(sys.argv[1]).gust_trim_resident_files
trim.restype = ctypes.c_long

def resident(addr, pages):
    # mincore says whether the page cache has the page, not whether this process maps it;
    # /proc/self/smaps says the latter.
    start = "%x-" % addr
    with open("/proc/self/smaps") as f:
        found = False
        for line in f:
            if line.startswith(start):
                found = True
            elif found and line.startswith("Rss:"):
                return int(line.split()[1])
    raise SystemExit("mapping %x not in smaps" % addr)

with tempfile.NamedTemporaryFile(dir=sys.argv[2]) as f:
    f.write(b"A" * PAGE * 4)
    f.flush()
    fd = f.fileno()
    # A read-only private mapping whose pages were only read: given back.
    ro = libc.mmap(None, PAGE * 4, PROT_READ, MAP_PRIVATE, fd, 0)
    # A private mapping written to, then made read-only (as RELRO is): kept.
    cow = libc.mmap(None, PAGE * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)
    assert ro not in (None, ctypes.c_void_p(-1).value) and cow not in (None, ctypes.c_void_p(-1).value)
    ctypes.memmove(cow, b"B" * 8, 8)
    assert libc.mprotect(cow, PAGE * 4, PROT_READ) == 0
    _ = ctypes.string_at(ro, PAGE * 4)
    _ = ctypes.string_at(cow + PAGE, PAGE * 3)
    before_ro, before_cow = resident(ro, 4), resident(cow, 4)
    dropped = trim()
    after_ro, after_cow = resident(ro, 4), resident(cow, 4)
    print("dropped", dropped, "ro", before_ro, after_ro, "cow", before_cow, after_cow)
    assert dropped >= before_ro, "the read-only mapping's pages are counted as given back"
    assert before_ro == PAGE * 4 // 1024 and after_ro == 0, "read-only file pages are given back"
    assert after_cow == before_cow, "a mapping with copy-on-write pages is left alone"
    assert ctypes.string_at(cow, 8) == b"B" * 8, "written data survives"
    assert ctypes.string_at(ro, PAGE * 4) == b"A" * PAGE * 4, "given-back pages read back from the file"
    print("ok")
