/*
 * relp_guard — keeps librelp from closing descriptors it no longer owns
 * (what and why: relp_guard.h).
 *
 * How the calls are redirected: librelp reaches close(), BIO_new_socket()
 * and the rest through its global offset table, one pointer per imported
 * function, filled by the dynamic linker.  The guard finds librelp's
 * relocations (dl_iterate_phdr, its PT_DYNAMIC), and for each wrapped name
 * overwrites that pointer with the wrapper's address.  Only librelp's own
 * calls change: the executable, OpenSSL, libc and every other library keep
 * theirs.  Debian links librelp with -z relro -z now, so the table is
 * read-only once loaded: the page is made writable for the store and
 * read-only again, as the dynamic linker left it.
 *
 * librelp exports no version call, so the guard is installed whatever the
 * version: with a fixed librelp (1.13 and later) it skips nothing.  Its
 * one risk is a librelp that obtains descriptors in a way the guard does
 * not see (a stale record would skip a real close: a leak), so it refuses
 * to install when librelp imports any other call that makes descriptors.
 */
#include "source/relp_guard.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <link.h>
#include <openssl/bio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/log.h"

/* the two 64-bit architectures sluiced is built for; elsewhere no guard */
#if defined(__x86_64__)
#define GUARD_R_SLOT R_X86_64_JUMP_SLOT
#define GUARD_R_GLOB R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define GUARD_R_SLOT R_AARCH64_JUMP_SLOT
#define GUARD_R_GLOB R_AARCH64_GLOB_DAT
#endif
#define GUARD_R_TYPE(info) ELF64_R_TYPE(info)
#define GUARD_R_SYM(info) ELF64_R_SYM(info)

static bool guard_enforce = true;         /* tests: false passes every call through */
static void (*guard_after_close)(int fd); /* tests: take the number just freed */
static uint64_t guard_skips;              /* atomic builtins */
static bool guard_ok;                     /* the result of the one install */
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;

/*
 * The numbers this thread's librelp calls closed and have not obtained
 * again since: one bit per descriptor number, grown on demand, freed when
 * the thread ends (the key's destructor).
 */
static __thread uint64_t *closed_bits;
static __thread size_t closed_words;
static pthread_key_t closed_key;

static bool
closed_has(int fd)
{
    size_t w = (size_t)fd / 64;
    return w < closed_words && (closed_bits[w] >> (fd % 64) & 1u) != 0;
}

static void
closed_mark(int fd, bool on)
{
    size_t w = (size_t)fd / 64;
    if (w >= closed_words) {
        if (!on) {
            return;
        }
        size_t n = w + 1 > 2 * closed_words ? w + 1 : 2 * closed_words;
        uint64_t *bits = realloc(closed_bits, n * sizeof(*bits));
        if (bits == NULL) {
            return; /* unrecorded: a second close of fd goes through, as without the guard */
        }
        memset(bits + closed_words, 0, (n - closed_words) * sizeof(*bits));
        closed_bits = bits;
        closed_words = n;
        (void)pthread_setspecific(closed_key, bits);
    }
    if (on) {
        closed_bits[w] |= (uint64_t)1 << (fd % 64);
    } else {
        closed_bits[w] &= ~((uint64_t)1 << (fd % 64));
    }
}

/* A number librelp obtained is its own again. */
static int
obtained(int fd)
{
    if (fd >= 0) {
        int saved = errno;
        closed_mark(fd, false);
        errno = saved;
    }
    return fd;
}

static void
skipped(const char *call, int fd)
{
    uint64_t n = __atomic_add_fetch(&guard_skips, 1, __ATOMIC_RELAXED);
    if (n == 1) {
        log_info("librelp: %s of descriptor %d it had already closed skipped (a librelp "
                 "defect fixed in 1.13; counted in sluice_relp_closes_skipped_total)",
                 call, fd);
    } else {
        log_debug("librelp: %s of descriptor %d it had already closed skipped", call, fd);
    }
}

static int
guard_close(int fd)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (__atomic_load_n(&guard_enforce, __ATOMIC_RELAXED) && closed_has(fd)) {
        skipped("close", fd);
        errno = EBADF;
        return -1;
    }
    int rc = close(fd);
    int saved = errno;
    closed_mark(fd, true); /* close frees the number even when it fails (EINTR, EIO) */
    void (*hook)(int) = __atomic_load_n(&guard_after_close, __ATOMIC_ACQUIRE);
    if (hook != NULL) {
        hook(fd);
    }
    errno = saved;
    return rc;
}

static int
guard_shutdown(int fd, int how)
{
    if (fd >= 0 && __atomic_load_n(&guard_enforce, __ATOMIC_RELAXED) && closed_has(fd)) {
        skipped("shutdown", fd);
        errno = EBADF;
        return -1;
    }
    return shutdown(fd, how);
}

static int
guard_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return obtained(accept(fd, addr, len));
}

static int
guard_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    return obtained(accept4(fd, addr, len, flags));
}

static int
guard_socket(int domain, int type, int proto)
{
    return obtained(socket(domain, type, proto));
}

static int
guard_epoll_create(int size)
{
    return obtained(epoll_create(size));
}

static int
guard_epoll_create1(int flags)
{
    return obtained(epoll_create1(flags));
}

/*
 * The BIO gets a duplicate of the socket that it owns and closes itself
 * (BIO_CLOSE): librelp closes its number first and frees the SSL after,
 * so the alert SSL_shutdown writes then still reaches the socket (which
 * librelp has shut down: the write fails with EPIPE, SIGPIPE is ignored)
 * and SSL_free closes the duplicate, a number no one else can hold.
 */
static BIO *
guard_bio_new_socket(int sock, int close_flag)
{
    if (!__atomic_load_n(&guard_enforce, __ATOMIC_RELAXED)) {
        return BIO_new_socket(sock, close_flag);
    }
    int own = fcntl(sock, F_DUPFD_CLOEXEC, 0);
    if (own < 0) {
        static __thread struct sl_ratelimit rl = {.interval_ms = 10000};
        uint64_t more = 0;
        if (sl_ratelimit_ok(&rl, sl_now_ms(), &more)) {
            log_warn("librelp: cannot duplicate a TLS socket (%" PRIu64 " more not logged); "
                     "its session goes on without the duplicate",
                     more);
        }
        return BIO_new_socket(sock, BIO_NOCLOSE); /* at least no second close */
    }
    BIO *bio = BIO_new_socket(own, BIO_CLOSE);
    if (bio == NULL) {
        close(own);
    }
    return bio;
}

#ifdef GUARD_R_SLOT
struct redirect {
    const char *name;
    void *to;
    bool required; /* librelp < 1.13 imports it; not found means the guard cannot work */
    bool present;  /* found in librelp's relocations */
};

static struct redirect redirects[] = {
    {"close", (void *)guard_close, true, false},
    {"shutdown", (void *)guard_shutdown, true, false},
    {"BIO_new_socket", (void *)guard_bio_new_socket, true, false},
    {"accept", (void *)guard_accept, true, false},
    {"socket", (void *)guard_socket, true, false},
    {"accept4", (void *)guard_accept4, false, false},
    {"epoll_create", (void *)guard_epoll_create, false, false},
    {"epoll_create1", (void *)guard_epoll_create1, false, false},
};

#define NREDIRECTS (sizeof(redirects) / sizeof(redirects[0]))

/* Imports through which librelp could obtain a descriptor the guard does
 * not see: with any of them the record could be stale, so no guard. */
static const char *const unseen_creators[] = {
    "dup",      "dup2",         "dup3",         "open",          "open64",  "openat",
    "openat64", "pipe",         "pipe2",        "socketpair",    "eventfd", "timerfd_create",
    "signalfd", "memfd_create", "inotify_init", "inotify_init1",
};

struct found {
    bool seen;       /* librelp is loaded */
    const char *why; /* set when it cannot be guarded */
};

/* Stores to one pointer of the table, read-only or not. */
static bool
slot_store(void **slot, void *to, const char *ro_lo, const char *ro_hi)
{
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    char *page = (char *)slot - ((uintptr_t)slot & (pg - 1));
    /* the dynamic linker protects whole pages: [lo, hi) rounded down (glibc _dl_protect_relro) */
    bool ro = ro_lo != NULL && page >= ro_lo - ((uintptr_t)ro_lo & (pg - 1)) &&
              page < ro_hi - ((uintptr_t)ro_hi & (pg - 1));
    if (ro && mprotect(page, pg, PROT_READ | PROT_WRITE) != 0) {
        return false;
    }
    __atomic_store_n(slot, to, __ATOMIC_RELEASE);
    if (ro) {
        (void)mprotect(page, pg, PROT_READ);
    }
    return true;
}

/* Walks one relocation table (RELA; x86-64 and aarch64 use no other). */
static void
patch_table(const ElfW(Rela) * rel, size_t bytes, const ElfW(Sym) * symtab, const char *strtab,
            char *base, const char *ro_lo, const char *ro_hi, struct found *f, bool apply)
{
    for (size_t i = 0; i < bytes / sizeof(*rel); i++) {
        unsigned long type = GUARD_R_TYPE(rel[i].r_info);
        const char *name = strtab + symtab[GUARD_R_SYM(rel[i].r_info)].st_name;
        for (size_t k = 0; !apply && k < sizeof(unseen_creators) / sizeof(unseen_creators[0]);
             k++) {
            if (strcmp(name, unseen_creators[k]) == 0) {
                f->why = "it imports a descriptor call the guard does not wrap";
            }
        }
        if (type != GUARD_R_SLOT && type != GUARD_R_GLOB) {
            continue;
        }
        for (size_t k = 0; k < NREDIRECTS; k++) {
            if (strcmp(name, redirects[k].name) != 0) {
                continue;
            }
            if (!apply) {
                redirects[k].present = true;
            } else if (!slot_store((void **)(void *)(base + rel[i].r_offset), redirects[k].to,
                                   ro_lo, ro_hi)) {
                f->why = "its offset table cannot be made writable";
            }
        }
    }
}

static int
patch_relp(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct found *f = arg;
    const char *slash = strrchr(info->dlpi_name, '/');
    const char *file = slash != NULL ? slash + 1 : info->dlpi_name;
    if (strncmp(file, "librelp.so", strlen("librelp.so")) != 0) {
        return 0;
    }
    f->seen = true;
    /* the one integer-to-pointer step: where the object was loaded */
    char *base = (char *)info->dlpi_addr; // NOLINT(performance-no-int-to-ptr)
    const char *ro_lo = NULL, *ro_hi = NULL;
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC) {
            dyn = (const ElfW(Dyn) *)(const void *)(base + ph->p_vaddr);
        } else if (ph->p_type == PT_GNU_RELRO) {
            ro_lo = base + ph->p_vaddr;
            ro_hi = ro_lo + ph->p_memsz;
        }
    }
    const char *symtab = NULL, *strtab = NULL, *jmprel = NULL, *rela = NULL;
    size_t pltrelsz = 0, relasz = 0;
    long pltrel = DT_RELA;
    for (; dyn != NULL && dyn->d_tag != DT_NULL; dyn++) {
        /* glibc has already relocated these to addresses; a loader that
         * has not leaves them as offsets from the base */
        ElfW(Addr) v = dyn->d_un.d_ptr;
        const char *p = base + (v >= info->dlpi_addr ? v - info->dlpi_addr : v);
        switch (dyn->d_tag) {
        case DT_SYMTAB:
            symtab = p;
            break;
        case DT_STRTAB:
            strtab = p;
            break;
        case DT_JMPREL:
            jmprel = p;
            break;
        case DT_RELA:
            rela = p;
            break;
        case DT_PLTRELSZ:
            pltrelsz = dyn->d_un.d_val;
            break;
        case DT_RELASZ:
            relasz = dyn->d_un.d_val;
            break;
        case DT_PLTREL:
            pltrel = (long)dyn->d_un.d_val;
            break;
        default:
            break;
        }
    }
    if (symtab == NULL || strtab == NULL || pltrel != DT_RELA) {
        f->why = "its dynamic section is not the expected shape";
        return 1;
    }
    const ElfW(Sym) *syms = (const ElfW(Sym) *)(const void *)symtab;
    const char *strs = strtab;
    /* first look (every import known, every required one there), then store */
    for (int apply = 0; apply <= 1 && f->why == NULL; apply++) {
        for (size_t k = 0; apply == 1 && k < NREDIRECTS; k++) {
            if (redirects[k].required && !redirects[k].present) {
                f->why = "an expected import was not found";
                return 1;
            }
        }
        if (jmprel != NULL) {
            patch_table((const ElfW(Rela) *)(const void *)jmprel, pltrelsz, syms, strs, base, ro_lo,
                        ro_hi, f, apply);
        }
        if (rela != NULL) {
            patch_table((const ElfW(Rela) *)(const void *)rela, relasz, syms, strs, base, ro_lo,
                        ro_hi, f, apply);
        }
    }
    return 1;
}
#endif

static void
free_bits(void *bits)
{
    free(bits);
}

static void
install_once(void)
{
#ifdef GUARD_R_SLOT
    if (pthread_key_create(&closed_key, free_bits) != 0) {
        log_warnx("librelp: cannot guard its descriptors (no thread key)");
        return;
    }
    struct found f = {false, NULL};
    (void)dl_iterate_phdr(patch_relp, &f);
    if (!f.seen) {
        f.why = "it is not loaded as a shared library";
    }
    if (f.why != NULL) {
        log_warnx("librelp: cannot guard its descriptors (%s); with a librelp before 1.13, "
                  "RELP over TLS may close another connection's descriptor (docs/security.md)",
                  f.why);
        return;
    }
    guard_ok = true;
    log_debug("librelp: descriptor guard installed");
#else
    log_warnx("librelp: cannot guard its descriptors on this architecture; with a librelp "
              "before 1.13, RELP over TLS may close another connection's descriptor "
              "(docs/security.md)");
#endif
}

bool
sl_relp_guard_install(void)
{
    (void)pthread_once(&guard_once, install_once);
    return guard_ok;
}

void
sl_relp_guard_forget(void)
{
    if (closed_bits != NULL) {
        memset(closed_bits, 0, closed_words * sizeof(*closed_bits));
    }
}

uint64_t
sl_relp_guard_skipped(void)
{
    return __atomic_load_n(&guard_skips, __ATOMIC_RELAXED);
}

void
sl_relp_guard_test(bool enforce, void (*after_close)(int fd))
{
    __atomic_store_n(&guard_enforce, enforce, __ATOMIC_RELAXED);
    __atomic_store_n(&guard_after_close, after_close, __ATOMIC_RELEASE);
}
