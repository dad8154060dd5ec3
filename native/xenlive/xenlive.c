/*
 * xenlive: the few libxenctrl / libxenforeignmemory / libxenstore calls p2m-audit needs to read a running
 * PV domain from dom0, as Node-API functions (node_api.h, plain C). It follows the calls of Xen 4.17's
 * tools/misc/xen-mfndump.c and tools/libs/guest/xg_domain.c (xc_map_domain_meminfo) and
 * tools/libs/guest/xg_sr_save_x86_pv.c: xc_domain_getinfo, xc_domain_get_guest_width,
 * xc_vcpu_getcontext, xc_maximum_ram_page, xenforeignmemory_map (read-only), xc_get_pfn_type_batch,
 * xc_domain_pause / unpause, xs_read / xs_directory. Everything else (what the bytes mean) is TypeScript.
 *
 * Frames are passed as doubles (machine frame numbers are below 2^52). Mapped frames are copied into the
 * caller's Buffer and unmapped before the call returns; no mapping outlives a call.
 * Errors throw an Error whose `errno` property is the C errno and whose message names the call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <node_api.h>
#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenstore.h>

#define PAGE_BYTES 4096
/* The domctl takes at most 1024 frames a call (xg_domain.c batches by 1024 too). */
#define PFN_TYPE_BATCH 1024
#define LIST_MAX_DOMAINS 1024
#define GDT_FRAMES_MAX 16

/* Exported by libxenctrl 4.17 (VERS_4.17.0) but declared only in its private xc_private.h. */
int xc_get_pfn_type_batch(xc_interface *xch, uint32_t dom, unsigned int num, xen_pfn_t *arr);

/* libxc logs its errors to stderr by default; p2m-audit reports them itself in one line. */
static void quiet_vmessage(xentoollog_logger *l, xentoollog_level level, int errnoval, const char *context,
                           const char *format, va_list al) {
  (void)l; (void)level; (void)errnoval; (void)context; (void)format; (void)al;
}
static void quiet_progress(xentoollog_logger *l, const char *context, const char *doing, int percent,
                           unsigned long done, unsigned long total) {
  (void)l; (void)context; (void)doing; (void)percent; (void)done; (void)total;
}
static void quiet_destroy(xentoollog_logger *l) { (void)l; }
static xentoollog_logger quiet_logger = { quiet_vmessage, quiet_progress, quiet_destroy };

typedef struct {
  xc_interface *xch;
  xenforeignmemory_handle *fmem;
  struct xs_handle *xs;
} live_handle;

/* ---- Node-API helpers -------------------------------------------------------------------------------- */

#define CHECK(call)                                                                                       \
  do {                                                                                                    \
    if ((call) != napi_ok) {                                                                              \
      napi_throw_error(env, NULL, "xenlive: Node-API call failed: " #call);                               \
      return NULL;                                                                                        \
    }                                                                                                     \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  napi_value m, e, n;
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  napi_create_int32(env, err, &n);
  napi_set_named_property(env, e, "errno", n);
  napi_throw(env, e);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "xenlive: missing arguments");
    return 0;
  }
  return 1;
}

static live_handle *get_handle(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL || ((live_handle *)p)->xch == NULL) {
    napi_throw_type_error(env, NULL, "xenlive: not an open handle");
    return NULL;
  }
  return (live_handle *)p;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "xenlive: expected an unsigned integer");
    return 0;
  }
  return 1;
}

static void set_num(napi_env env, napi_value obj, const char *name, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, name, n);
}

static void set_bool(napi_env env, napi_value obj, const char *name, int v) {
  napi_value b;
  napi_get_boolean(env, v != 0, &b);
  napi_set_named_property(env, obj, name, b);
}

static void set_u64(napi_env env, napi_value obj, const char *name, uint64_t v) {
  napi_value b;
  napi_create_bigint_uint64(env, v, &b);
  napi_set_named_property(env, obj, name, b);
}

/* ---- handles ----------------------------------------------------------------------------------------- */

static void close_handle(live_handle *h) {
  if (h->xs) xs_close(h->xs);
  if (h->fmem) xenforeignmemory_close(h->fmem);
  if (h->xch) xc_interface_close(h->xch);
  h->xs = NULL;
  h->fmem = NULL;
  h->xch = NULL;
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  close_handle((live_handle *)data);
  free(data);
}

/* open(): xenctrl + foreign memory (+ xenstore when it answers). */
static napi_value x_open(napi_env env, napi_callback_info info) {
  (void)info;
  live_handle *h = calloc(1, sizeof *h);
  napi_value ext;
  if (!h) return throw_errno(env, "calloc", ENOMEM);
  h->xch = xc_interface_open(&quiet_logger, &quiet_logger, 0);
  if (!h->xch) {
    int err = errno;
    free(h);
    return throw_errno(env, "xc_interface_open", err);
  }
  h->fmem = xenforeignmemory_open(&quiet_logger, 0);
  if (!h->fmem) {
    int err = errno;
    close_handle(h);
    free(h);
    return throw_errno(env, "xenforeignmemory_open", err);
  }
  h->xs = xs_open(XS_OPEN_READONLY); /* NULL is fine: names are then unknown */
  CHECK(napi_create_external(env, h, finalize_handle, NULL, &ext));
  return ext;
}

static napi_value x_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *p = NULL;
  if (!get_args(env, info, 1, argv)) return NULL;
  if (napi_get_value_external(env, argv[0], &p) == napi_ok && p) close_handle((live_handle *)p);
  return NULL;
}

/* ---- domain information ------------------------------------------------------------------------------ */

static napi_value info_object(napi_env env, const xc_dominfo_t *d) {
  napi_value o;
  CHECK(napi_create_object(env, &o));
  set_num(env, o, "domid", d->domid);
  set_bool(env, o, "dying", d->dying);
  set_bool(env, o, "crashed", d->crashed);
  set_bool(env, o, "shutdown", d->shutdown);
  set_bool(env, o, "paused", d->paused);
  set_bool(env, o, "hvm", d->hvm);
  set_num(env, o, "nrPages", (double)d->nr_pages);
  set_num(env, o, "maxMemKb", (double)d->max_memkb);
  set_num(env, o, "sharedInfoFrame", (double)d->shared_info_frame);
  set_num(env, o, "nrOnlineVcpus", d->nr_online_vcpus);
  set_num(env, o, "maxVcpuId", d->max_vcpu_id);
  set_num(env, o, "emulationFlags", d->arch_config.emulation_flags);
  return o;
}

/* domainInfo(h, domid) → info, or throws ESRCH when no such domain (xen-mfndump's check: info.domid == domid). */
static napi_value x_domain_info(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint32_t domid;
  xc_dominfo_t d;
  live_handle *h;
  if (!get_args(env, info, 2, argv) || !(h = get_handle(env, argv[0])) || !get_u32(env, argv[1], &domid)) return NULL;
  if (xc_domain_getinfo(h->xch, domid, 1, &d) != 1 || d.domid != domid) {
    int err = errno;
    return throw_errno(env, "xc_domain_getinfo", d.domid != domid || err == 0 ? ESRCH : err);
  }
  return info_object(env, &d);
}

/* listDomains(h) → info[] of every domain (up to 1024). */
static napi_value x_list_domains(napi_env env, napi_callback_info info) {
  napi_value argv[1], arr;
  live_handle *h;
  xc_dominfo_t *d;
  int n, i;
  if (!get_args(env, info, 1, argv) || !(h = get_handle(env, argv[0]))) return NULL;
  d = calloc(LIST_MAX_DOMAINS, sizeof *d);
  if (!d) return throw_errno(env, "calloc", ENOMEM);
  n = xc_domain_getinfo(h->xch, 0, LIST_MAX_DOMAINS, d);
  if (n < 0) {
    int err = errno;
    free(d);
    return throw_errno(env, "xc_domain_getinfo", err);
  }
  if (napi_create_array_with_length(env, (size_t)n, &arr) != napi_ok) { free(d); return NULL; }
  for (i = 0; i < n; i++) napi_set_element(env, arr, (uint32_t)i, info_object(env, &d[i]));
  free(d);
  return arr;
}

/* guestWidth(h, domid) → bytes (8 or 4). */
static napi_value x_guest_width(napi_env env, napi_callback_info info) {
  napi_value argv[2], r;
  uint32_t domid;
  unsigned int width = 0;
  live_handle *h;
  if (!get_args(env, info, 2, argv) || !(h = get_handle(env, argv[0])) || !get_u32(env, argv[1], &domid)) return NULL;
  if (xc_domain_get_guest_width(h->xch, domid, &width)) return throw_errno(env, "xc_domain_get_guest_width", errno);
  CHECK(napi_create_uint32(env, width, &r));
  return r;
}

/* vcpuContext(h, domid, vcpu) → { cr3 (bigint, raw ctrlreg[3]), gdtFrames: number[], gdtEnts, flags, raw: Buffer }. */
static napi_value x_vcpu_context(napi_env env, napi_callback_info info) {
  napi_value argv[3], o, frames, raw;
  uint32_t domid, vcpu;
  vcpu_guest_context_any_t ctx;
  live_handle *h;
  unsigned int i, n;
  if (!get_args(env, info, 3, argv) || !(h = get_handle(env, argv[0])) || !get_u32(env, argv[1], &domid) ||
      !get_u32(env, argv[2], &vcpu))
    return NULL;
  memset(&ctx, 0, sizeof ctx);
  if (xc_vcpu_getcontext(h->xch, domid, vcpu, &ctx)) return throw_errno(env, "xc_vcpu_getcontext", errno);
  CHECK(napi_create_object(env, &o));
  set_u64(env, o, "cr3", ctx.x64.ctrlreg[3]);
  set_num(env, o, "gdtEnts", (double)ctx.x64.gdt_ents);
  set_num(env, o, "flags", (double)ctx.x64.flags);
  /* 512 descriptors of 8 bytes a frame */
  n = (unsigned int)((ctx.x64.gdt_ents + 511) / 512);
  if (n > GDT_FRAMES_MAX) n = GDT_FRAMES_MAX;
  CHECK(napi_create_array_with_length(env, n, &frames));
  for (i = 0; i < n; i++) {
    napi_value f;
    napi_create_double(env, (double)ctx.x64.gdt_frames[i], &f);
    napi_set_element(env, frames, i, f);
  }
  napi_set_named_property(env, o, "gdtFrames", frames);
  /* the whole vcpu_guest_context_x86_64_t, as dump-core's .xen_prstatus and the save stream carry it */
  CHECK(napi_create_buffer_copy(env, sizeof ctx.x64, &ctx.x64, NULL, &raw));
  napi_set_named_property(env, o, "raw", raw);
  return o;
}

/* maxMfn(h) → XENMEM_maximum_ram_page (the save side's max_mfn). */
static napi_value x_max_mfn(napi_env env, napi_callback_info info) {
  napi_value argv[1], r;
  unsigned long max_mfn = 0;
  live_handle *h;
  if (!get_args(env, info, 1, argv) || !(h = get_handle(env, argv[0]))) return NULL;
  if (xc_maximum_ram_page(h->xch, &max_mfn) < 0) return throw_errno(env, "xc_maximum_ram_page", errno);
  CHECK(napi_create_double(env, (double)max_mfn, &r));
  return r;
}

/* pause(h, domid) / unpause(h, domid): Xen's controller pause count (xl pause / xl unpause). */
static napi_value pause_op(napi_env env, napi_callback_info info, int pause) {
  napi_value argv[2];
  uint32_t domid;
  live_handle *h;
  if (!get_args(env, info, 2, argv) || !(h = get_handle(env, argv[0])) || !get_u32(env, argv[1], &domid)) return NULL;
  if ((pause ? xc_domain_pause : xc_domain_unpause)(h->xch, domid))
    return throw_errno(env, pause ? "xc_domain_pause" : "xc_domain_unpause", errno);
  return NULL;
}

static napi_value x_pause(napi_env env, napi_callback_info info) { return pause_op(env, info, 1); }
static napi_value x_unpause(napi_env env, napi_callback_info info) { return pause_op(env, info, 0); }

/* ---- frames ------------------------------------------------------------------------------------------ */

static int get_frames(napi_env env, napi_value v, double **frames, size_t *n) {
  napi_typedarray_type t;
  void *data;
  if (napi_get_typedarray_info(env, v, &t, n, &data, NULL, NULL) != napi_ok || t != napi_float64_array) {
    napi_throw_type_error(env, NULL, "xenlive: expected a Float64Array of frame numbers");
    return 0;
  }
  *frames = (double *)data;
  return 1;
}

/*
 * mapFrames(h, domid, frames: Float64Array, out: Buffer, errs: Int32Array) → frames mapped.
 * One read-only xenforeignmemory_map of all frames (the caller bounds the batch), copied into
 * out[i·4096 …], errs[i] = 0 or the page's errno; unmapped before returning.
 */
static napi_value x_map_frames(napi_env env, napi_callback_info info) {
  napi_value argv[5], r;
  uint32_t domid;
  live_handle *h;
  double *frames;
  size_t n, outLen, errN, i;
  void *out, *errData;
  napi_typedarray_type et;
  xen_pfn_t *arr;
  int *perr, mapped = 0;
  unsigned char *map;
  if (!get_args(env, info, 5, argv) || !(h = get_handle(env, argv[0])) || !get_u32(env, argv[1], &domid) ||
      !get_frames(env, argv[2], &frames, &n))
    return NULL;
  CHECK(napi_get_buffer_info(env, argv[3], &out, &outLen));
  if (napi_get_typedarray_info(env, argv[4], &et, &errN, &errData, NULL, NULL) != napi_ok || et != napi_int32_array) {
    napi_throw_type_error(env, NULL, "xenlive: expected an Int32Array for the per-frame errors");
    return NULL;
  }
  if (outLen < n * PAGE_BYTES || errN < n) {
    napi_throw_range_error(env, NULL, "xenlive: output buffer or error array too small for the frames");
    return NULL;
  }
  if (n == 0) {
    CHECK(napi_create_int32(env, 0, &r));
    return r;
  }
  arr = malloc(n * sizeof *arr);
  perr = (int *)errData;
  if (!arr) return throw_errno(env, "malloc", ENOMEM);
  for (i = 0; i < n; i++) arr[i] = (xen_pfn_t)frames[i];
  map = xenforeignmemory_map(h->fmem, domid, PROT_READ, n, arr, perr);
  if (!map) {
    int err = errno;
    free(arr);
    return throw_errno(env, "xenforeignmemory_map", err);
  }
  for (i = 0; i < n; i++) {
    if (perr[i] == 0) {
      memcpy((unsigned char *)out + i * PAGE_BYTES, map + i * PAGE_BYTES, PAGE_BYTES);
      mapped++;
    } else if (perr[i] < 0) {
      perr[i] = -perr[i];
    }
  }
  xenforeignmemory_unmap(h->fmem, map, n);
  free(arr);
  CHECK(napi_create_int32(env, mapped, &r));
  return r;
}

/*
 * pfnTypes(h, domid, entries: BigUint64Array, out: Uint8Array): XEN_DOMCTL_getpageframeinfo3 in batches of
 * 1024 (xg_domain.c xc_map_domain_meminfo passes the raw p2m entries the same way), out[i] = the type nibble
 * (LTAB bits >> 28) Xen returns for entries[i].
 */
static napi_value x_pfn_types(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint32_t domid;
  live_handle *h;
  size_t n, outN, i, j;
  void *inData, *outData;
  napi_typedarray_type it, ot;
  xen_pfn_t batch[PFN_TYPE_BATCH];
  if (!get_args(env, info, 4, argv) || !(h = get_handle(env, argv[0])) || !get_u32(env, argv[1], &domid)) return NULL;
  if (napi_get_typedarray_info(env, argv[2], &it, &n, &inData, NULL, NULL) != napi_ok || it != napi_biguint64_array) {
    napi_throw_type_error(env, NULL, "xenlive: expected a BigUint64Array of p2m entries");
    return NULL;
  }
  if (napi_get_typedarray_info(env, argv[3], &ot, &outN, &outData, NULL, NULL) != napi_ok || ot != napi_uint8_array ||
      outN < n) {
    napi_throw_type_error(env, NULL, "xenlive: expected a Uint8Array as long as the entries");
    return NULL;
  }
  for (i = 0; i < n; i += PFN_TYPE_BATCH) {
    size_t count = n - i < PFN_TYPE_BATCH ? n - i : PFN_TYPE_BATCH;
    for (j = 0; j < count; j++) batch[j] = (xen_pfn_t)((uint64_t *)inData)[i + j];
    if (xc_get_pfn_type_batch(h->xch, domid, (unsigned int)count, batch)) return throw_errno(env, "xc_get_pfn_type_batch", errno);
    for (j = 0; j < count; j++)
      ((uint8_t *)outData)[i + j] = (uint8_t)((batch[j] & XEN_DOMCTL_PFINFO_LTAB_MASK) >> XEN_DOMCTL_PFINFO_LTAB_SHIFT);
  }
  return NULL;
}

/* ---- xenstore ---------------------------------------------------------------------------------------- */

/* xsRead(h, path) → string, or null when the key is absent or xenstore is not reachable. */
static napi_value x_xs_read(napi_env env, napi_callback_info info) {
  napi_value argv[2], r;
  live_handle *h;
  char path[256];
  size_t plen;
  unsigned int len = 0;
  char *v;
  if (!get_args(env, info, 2, argv) || !(h = get_handle(env, argv[0]))) return NULL;
  CHECK(napi_get_value_string_utf8(env, argv[1], path, sizeof path, &plen));
  if (!h->xs) {
    CHECK(napi_get_null(env, &r));
    return r;
  }
  v = xs_read(h->xs, XBT_NULL, path, &len);
  if (!v) {
    CHECK(napi_get_null(env, &r));
    return r;
  }
  napi_create_string_utf8(env, v, len, &r);
  free(v);
  return r;
}

/* ---- module ------------------------------------------------------------------------------------------ */

#define METHOD(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_default, NULL }

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    METHOD("open", x_open),
    METHOD("close", x_close),
    METHOD("domainInfo", x_domain_info),
    METHOD("listDomains", x_list_domains),
    METHOD("guestWidth", x_guest_width),
    METHOD("vcpuContext", x_vcpu_context),
    METHOD("maxMfn", x_max_mfn),
    METHOD("pause", x_pause),
    METHOD("unpause", x_unpause),
    METHOD("mapFrames", x_map_frames),
    METHOD("pfnTypes", x_pfn_types),
    METHOD("xsRead", x_xs_read),
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
