/*
 * gust_native: the two things Gust's Node and Python bootstraps cannot do in their own
 * language. Linux (glibc or musl); loaded from <state>/runtime/lib/gust_native.so.
 *
 * 1. gust_trim_resident_files(): a prewarmed spare (a generic interpreter waiting to be given
 *    a function) gives back the resident pages of the files it has mapped read-only: the
 *    interpreter's executable, its shared libraries, their read-only data. Such a page is a
 *    clean copy of the file's page cache: madvise(MADV_DONTNEED) on a private, read-only file
 *    mapping only removes it from this process's page tables. The page stays in the page
 *    cache, so when the spare is specialised its next touch is a minor fault, not a disk read;
 *    under memory pressure the kernel can drop it without touching the spare. A mapping that
 *    holds any anonymous (copy-on-write) page is left alone: those pages are the only copy of
 *    what was written there (relocations, RELRO), and MADV_DONTNEED would lose them. Writable
 *    and shared mappings are left alone too. Returns the kilobytes that were resident in the
 *    mappings given back, or -1 when /proc/self/smaps cannot be read. The ranges are read
 *    from smaps and then advised: a thread that replaced one of those file mappings in between
 *    (dlclose, then a new mapping at the same address) would lose pages. It is called from an
 *    idle spare, whose other threads (V8's and libuv's workers; Python has none) map no
 *    files then; callers must keep it that way.
 *
 * 2. gust_set_trace_env(value): sets (or, for NULL, removes) _X_AMZN_TRACE_ID in the process
 *    environment once per invocation, as Lambda runtimes do, without glibc's setenv(). glibc
 *    keeps every distinct value ever given to setenv() for the life of the process (its
 *    "known values", so a pointer it handed out stays valid); a trace id is new on every
 *    invocation, so a warm instance grew by about 150 bytes an invocation, without bound
 *    (Node's process.env and Python's os.environ both call setenv). Here two buffers that
 *    this file owns take turns: putenv() puts the new one in the environment, and the one it
 *    replaced is reused next time. So, unlike setenv's, a getenv() pointer to the value is
 *    good until the next invocation but one (a Lambda runtime's value is per invocation).
 *    Like process.env's own setter it is for the main thread: Node workers started with
 *    SHARE_ENV that write the environment concurrently are not synchronised with it.
 *    Returns 0, or -1 with errno set.
 *
 * Node loads this file with process.dlopen(): napi_register_module_v1 exports `trim()` and
 * `setTraceEnv(value)`. The N-API symbols are weak, so the same file loads in Python, which
 * calls the C functions through ctypes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <errno.h>

#define MAX_RANGES 1024

struct range {
  uintptr_t start, end;
  long rss_kb;
};

/* One mapping of /proc/self/smaps while its fields are read. */
struct mapping {
  uintptr_t start, end;
  int eligible; /* private, not writable, backed by a file */
  long rss_kb;
  long anon_kb;
  long swap_kb;
};

static int header_line(const char *line, struct mapping *m) {
  unsigned long start, end, offset, inode;
  char perms[8], dev[16];
  int path_at = 0;
  if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &start, &end, perms, &offset, dev, &inode, &path_at) < 6)
    return 0;
  m->start = start;
  m->end = end;
  m->rss_kb = 0;
  m->anon_kb = -1; /* unknown until the Anonymous: and Swap: lines */
  m->swap_kb = -1;
  m->eligible = strlen(perms) == 4 && perms[1] == '-' && perms[3] == 'p' && inode != 0 && path_at > 0 &&
                line[path_at] == '/';
  return 1;
}

static long field_kb(const char *line, const char *name) {
  size_t n = strlen(name);
  if (strncmp(line, name, n) != 0) return -1;
  return strtol(line + n, NULL, 10);
}

static void close_mapping(const struct mapping *m, struct range *out, int *count) {
  /* A copy-on-write page in swap counts under Swap:, not Anonymous:; either means the
     mapping holds data the file does not. */
  if (!m->eligible || m->anon_kb != 0 || m->swap_kb != 0 || m->rss_kb <= 0 || *count >= MAX_RANGES) return;
  out[*count].start = m->start;
  out[*count].end = m->end;
  out[*count].rss_kb = m->rss_kb;
  (*count)++;
}

long gust_trim_resident_files(void) {
  static struct range ranges[MAX_RANGES];
  int count = 0;
  FILE *f = fopen("/proc/self/smaps", "re");
  if (!f) return -1;
  char line[4096];
  struct mapping m = {0};
  while (fgets(line, sizeof line, f)) {
    if (strchr(line, '\n') == NULL && !feof(f)) {
      /* a path longer than the buffer: skip the rest of the line, keep the mapping out */
      int c;
      while ((c = fgetc(f)) != EOF && c != '\n') {
      }
      close_mapping(&m, ranges, &count);
      m.eligible = 0;
      m.start = m.end = 0;
      continue;
    }
    struct mapping next;
    if (header_line(line, &next)) {
      close_mapping(&m, ranges, &count);
      m = next;
      continue;
    }
    long kb;
    if ((kb = field_kb(line, "Rss:")) >= 0) m.rss_kb = kb;
    else if ((kb = field_kb(line, "Anonymous:")) >= 0) m.anon_kb = kb;
    else if ((kb = field_kb(line, "Swap:")) >= 0) m.swap_kb = kb;
  }
  close_mapping(&m, ranges, &count);
  fclose(f);

  long dropped = 0;
  for (int i = 0; i < count; i++) {
    if (madvise((void *)ranges[i].start, ranges[i].end - ranges[i].start, MADV_DONTNEED) == 0)
      dropped += ranges[i].rss_kb;
  }
  return dropped;
}

#define TRACE_NAME "_X_AMZN_TRACE_ID"

int gust_set_trace_env(const char *value) {
  static char *buffers[2];
  static size_t capacity[2];
  static int spare; /* the buffer not in the environment now */
  if (value == NULL) return unsetenv(TRACE_NAME);
  size_t need = sizeof TRACE_NAME "=" + strlen(value); /* with the NUL */
  int i = spare;
  if (capacity[i] < need) {
    /* A longer value than this buffer has held: a new buffer. The old one is not freed (a
       getenv() pointer into it may still be in use somewhere); growth is rare and doubles. */
    size_t cap = need < 256 ? 256 : need * 2;
    char *grown = malloc(cap);
    if (grown == NULL) {
      errno = ENOMEM;
      return -1;
    }
    buffers[i] = grown;
    capacity[i] = cap;
  }
  memcpy(buffers[i], TRACE_NAME "=", sizeof TRACE_NAME);
  memcpy(buffers[i] + sizeof TRACE_NAME, value, need - sizeof TRACE_NAME);
  if (putenv(buffers[i]) != 0) return -1;
  spare = 1 - i;
  return 0;
}

/* N-API, resolved from the node executable when Node loads this file. */
typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);
extern int napi_create_int64(napi_env env, int64_t value, napi_value *result) __attribute__((weak));
extern int napi_create_function(napi_env env, const char *name, size_t length, napi_callback cb, void *data,
                                napi_value *result) __attribute__((weak));
extern int napi_set_named_property(napi_env env, napi_value object, const char *name, napi_value value)
    __attribute__((weak));
extern int napi_get_cb_info(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                            napi_value *this_arg, void **data) __attribute__((weak));
extern int napi_get_value_string_utf8(napi_env env, napi_value value, char *buf, size_t bufsize, size_t *result)
    __attribute__((weak));

/* `trim()`: gives back what is resident now; returns the kilobytes (or -1). */
static napi_value js_trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v = NULL;
  napi_create_int64(env, gust_trim_resident_files(), &v);
  return v;
}

/* `setTraceEnv(value)`: a string sets _X_AMZN_TRACE_ID, anything else removes it. Returns
   0, or -1 (the caller then falls back to process.env). */
static napi_value js_set_trace_env(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {NULL};
  napi_value out = NULL;
  int rc = -1;
  char small[256];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == 0) {
    size_t len = 0;
    if (argc < 1 || napi_get_value_string_utf8(env, argv[0], NULL, 0, &len) != 0) {
      rc = gust_set_trace_env(NULL); /* not a string */
    } else {
      char *buf = len < sizeof small ? small : malloc(len + 1);
      if (buf != NULL && napi_get_value_string_utf8(env, argv[0], buf, len + 1, &len) == 0)
        rc = gust_set_trace_env(buf);
      if (buf != small) free(buf);
    }
  }
  napi_create_int64(env, rc, &out);
  return out;
}

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, strlen(name), cb, NULL, &fn) == 0)
    napi_set_named_property(env, exports, name, fn);
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  if (napi_create_function && napi_set_named_property && napi_create_int64 && napi_get_cb_info &&
      napi_get_value_string_utf8) {
    export_function(env, exports, "trim", js_trim);
    export_function(env, exports, "setTraceEnv", js_set_trace_env);
  }
  return exports;
}
