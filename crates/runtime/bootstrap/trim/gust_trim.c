/*
 * gust_trim: lets a prewarmed spare (a generic Node or Python process waiting to be given a
 * function) give back the resident pages of the files it has mapped read-only: the
 * interpreter's executable, its shared libraries, their read-only data.
 *
 * Such a page is a clean copy of the file's page cache: madvise(MADV_DONTNEED) on a private,
 * read-only file mapping only removes it from this process's page tables. The page stays in
 * the page cache, so when the spare is specialised its next touch is a minor fault, not a
 * disk read; under memory pressure the kernel can drop it without touching the spare. A
 * mapping that holds any anonymous (copy-on-write) page is left alone: those pages are the
 * only copy of what was written there (relocations, RELRO), and MADV_DONTNEED would lose
 * them. Writable and shared mappings are left alone too.
 *
 * Linux only (it reads /proc/self/smaps). Loaded two ways:
 *   - Node: process.dlopen() of this file calls napi_register_module_v1, which exports
 *     `trim()`. The N-API symbols are weak, so the same file loads where they do not exist.
 *   - Python: ctypes.CDLL(path).gust_trim_resident_files().
 * Both return or report the kilobytes that were resident in the mappings given back, or -1
 * when /proc/self/smaps cannot be read.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
  m->anon_kb = -1; /* unknown until the Anonymous: line */
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
  if (!m->eligible || m->anon_kb != 0 || m->rss_kb <= 0 || *count >= MAX_RANGES) return;
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

/* `trim()`: gives back what is resident now; returns the kilobytes (or -1). */
static napi_value js_trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v = NULL;
  if (napi_create_int64) napi_create_int64(env, gust_trim_resident_files(), &v);
  return v;
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function && napi_set_named_property &&
      napi_create_function(env, "trim", 4, js_trim, NULL, &fn) == 0)
    napi_set_named_property(env, exports, "trim", fn);
  return exports;
}
