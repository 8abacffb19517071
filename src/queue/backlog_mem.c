/*
 * backlog_mem — the memory backlog (backlog.h): per reader a ring of the
 * chunks it still holds, in queue order.
 *
 * DESIGN
 * A chunk taken from the queue goes into every reader's ring with
 * refs = number of readers.  Per reader, from the ring's head:
 *   [head, head + nsent)  sent, waiting for commit (acking readers only),
 *   ring[head + nsent]    the first chunk not fully sent; off of its bytes
 *                         are sent already,
 * and coff bytes of ring[head] are committed.  A reader that does not ack
 * releases a chunk the moment it is fully sent (nsent and coff stay 0): the
 * same walk, the same cost as before commits existed.  A released chunk
 * whose refs reach 0 goes back to the queue (sl_queue_release), which
 * wakes paused producers when enough chunks are free.  A ring has room for
 * every chunk of the queue, so appending never fails.
 *
 * Eviction (when_full = drop_oldest, backlog.h evict_oldest): a reader's
 * first nsent + 1 chunks are pinned (sent and uncommitted, or the one being
 * sent); every later chunk it holds may go.  Chunks carry their place in
 * the queue's FIFO (seq, queue.h), which is append order, and every reader
 * holds every chunk appended after its head,
 * so a chunk is pinned by reader r exactly when its seq lies between r's
 * head and r's last pinned chunk.  The oldest evictable chunk is found by
 * walking candidates in seq order past those ranges; it is cut out of every
 * ring that holds it (the ring's pinned front moves up one slot, so nsent,
 * off and coff keep their meaning) and goes back to the queue.
 *
 * A reader whose sink a reload removes is marked retired: append gives it no
 * more chunks, it drains what it holds, then remove_reader gives up the rest.
 *
 * Thread: the writer (readers are added on the main thread at set-up, and
 * on the writer by a reload).
 */
#include <stdlib.h>
#include <string.h>

#include "sluice/backlog.h"

struct mem_reader {
    struct sl_backlog_reader pub;
    struct sl_chunk **ring;
    size_t cap; /* ring slots: every chunk of the queue */
    size_t head;
    size_t count; /* chunks held: sent-uncommitted plus unsent */
    size_t nsent; /* chunks from head fully sent, not committed (acks only) */
    size_t off;   /* bytes of ring[head + nsent] already sent */
    size_t coff;  /* bytes of ring[head] already committed (acks only) */
};

struct mem_backlog {
    struct sl_backlog pub;
    struct mem_reader **readers;
    size_t nreaders;
};

static struct sl_chunk *
mem_at(const struct mem_reader *m, size_t i)
{
    return m->ring[(m->head + i) % m->cap];
}

/*
 * The reader gives up its head chunk; the last holder recycles it and,
 * when it committed it (not at a forced free), makes it durable: readers
 * commit in queue order, so the last commit of chunk n comes after the
 * last commit of every chunk before it and the durable position moves
 * forward only, over a contiguous prefix.
 */
static void
mem_drop_head(struct mem_reader *m, bool committed)
{
    struct sl_chunk *c = m->ring[m->head];
    m->head = (m->head + 1) % m->cap;
    m->count--;
    if (--c->refs == 0) {
        if (committed) {
            sl_queue_set_durable(c->queue, c->seq);
        }
        sl_queue_release(c->queue, c);
    }
}

/* Moves a position (*off bytes into a chunk of len bytes) on by up to *n
 * bytes.  True when that finishes the chunk: then *off is 0 and *n keeps
 * the bytes left for the chunks after it. */
static bool
mem_advance(size_t *n, size_t len, size_t *off)
{
    size_t left = len - *off;
    if (*n < left) {
        *off += *n;
        *n = 0;
        return false;
    }
    *n -= left;
    *off = 0;
    return true;
}

static struct sl_backlog_reader *
mem_add_reader(struct sl_backlog *b, const char *name, bool acks)
{
    struct mem_backlog *mb = (struct mem_backlog *)b;
    struct mem_reader *m = calloc(1, sizeof(*m));
    struct mem_reader **rs = realloc(mb->readers, (mb->nreaders + 1) * sizeof(*rs));
    if (rs != NULL) {
        mb->readers = rs;
    }
    if (m == NULL || rs == NULL) {
        free(m);
        return NULL;
    }
    m->cap = sl_queue_max_chunks(b->queue); /* a reload may raise the bound */
    m->ring = calloc(m->cap, sizeof(*m->ring));
    if (m->ring == NULL) {
        free(m);
        return NULL;
    }
    m->pub.acks = acks;
    mb->readers[mb->nreaders++] = m;
    return &m->pub;
}

/* A reader added by a reload: an empty ring, so it starts at the next
 * chunk append takes. */
static struct sl_backlog_reader *
mem_add_reader_live(struct sl_backlog *b, const char *name, bool acks)
{
    return mem_add_reader(b, name, acks);
}

/* Lines (events) in bytes [from, len) of chunk c. */
static uint64_t
mem_lines(const struct sl_chunk *c, size_t from)
{
    uint64_t n = 0;
    for (const char *p = c->data + from, *end = c->data + c->len;
         p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) {
        n++;
    }
    return n;
}

static void
mem_remove_reader(struct sl_backlog *b, struct sl_backlog_reader *r, uint64_t *bytes,
                  uint64_t *events)
{
    struct mem_backlog *mb = (struct mem_backlog *)b;
    struct mem_reader *m = (struct mem_reader *)r;
    *bytes = m->pub.unsent + m->pub.uncommitted;
    *events = 0;
    /* What it holds and has not committed: from the committed offset of
     * its first chunk (an acking reader) or the sent one (a reader whose
     * sent is committed), to the end of its last. */
    for (size_t i = 0; i < m->count; i++) {
        *events += mem_lines(mem_at(m, i), i == 0 ? (m->pub.acks ? m->coff : m->off) : 0);
    }
    while (m->count > 0) {
        mem_drop_head(m, true);
    }
    for (size_t j = 0; j < mb->nreaders; j++) {
        if (mb->readers[j] == m) {
            mb->readers[j] = mb->readers[--mb->nreaders];
            break;
        }
    }
    free(m->ring);
    free(m);
}

static size_t
mem_append(struct sl_backlog *b, size_t max, uint64_t now_ms)
{
    struct mem_backlog *mb = (struct mem_backlog *)b;
    size_t taken = 0;
    for (; taken < max; taken++) {
        struct sl_chunk *c = sl_queue_pop(b->queue);
        if (c == NULL) {
            break;
        }
        size_t live = 0;
        for (size_t j = 0; j < mb->nreaders; j++) {
            live += !mb->readers[j]->pub.retired;
        }
        if (live == 0) {
            sl_queue_set_durable(b->queue, c->seq); /* no sink: nothing to wait for */
            sl_queue_release(b->queue, c);
            continue;
        }
        c->refs = (uint32_t)live;
        for (size_t j = 0; j < mb->nreaders; j++) {
            struct mem_reader *m = mb->readers[j];
            if (m->pub.retired) {
                continue; /* its sink is being removed: it only drains */
            }
            if (m->pub.unsent == 0) {
                m->pub.oldest_ms = now_ms;
            }
            m->ring[(m->head + m->count) % m->cap] = c;
            m->count++;
            m->pub.unsent += c->len;
        }
    }
    return taken;
}

static int
mem_peek(struct sl_backlog *b, struct sl_backlog_reader *r, struct iovec *iov, int iovmax,
         size_t max_bytes, size_t *bytes)
{
    struct mem_reader *m = (struct mem_reader *)r;
    size_t total = 0;
    int n = 0;
    for (size_t i = m->nsent; i < m->count && n < iovmax; i++) {
        struct sl_chunk *c = mem_at(m, i);
        size_t skip = i == m->nsent ? m->off : 0;
        if (n > 0 && total + (c->len - skip) > max_bytes) {
            break;
        }
        iov[n].iov_base = c->data + skip;
        iov[n].iov_len = c->len - skip;
        total += iov[n].iov_len;
        n++;
    }
    *bytes = total;
    return n;
}

static uint64_t
mem_sent(struct sl_backlog *b, struct sl_backlog_reader *r, size_t n, uint64_t now_ns,
         struct sl_hist *latency)
{
    struct mem_reader *m = (struct mem_reader *)r;
    uint64_t events = 0;
    m->pub.unsent -= n;
    if (m->pub.acks) {
        m->pub.uncommitted += n;
    }
    while (n > 0 && m->nsent < m->count) {
        struct sl_chunk *c = mem_at(m, m->nsent);
        if (!mem_advance(&n, c->len, &m->off)) {
            break;
        }
        events += c->nevents;
        if (c->nevents > 0 && now_ns > c->first_ns) {
            sl_hist_observe(latency, now_ns - c->first_ns, c->nevents);
        }
        if (m->pub.acks) {
            m->nsent++;
        } else {
            mem_drop_head(m, true);
        }
    }
    return events;
}

static void
mem_commit(struct sl_backlog *b, struct sl_backlog_reader *r, size_t n)
{
    struct mem_reader *m = (struct mem_reader *)r;
    if (n > m->pub.uncommitted) {
        n = m->pub.uncommitted; /* a sink cannot acknowledge what it was not given */
    }
    m->pub.uncommitted -= n;
    while (n > 0 && m->count > 0) {
        if (!mem_advance(&n, m->ring[m->head]->len, &m->coff)) {
            break;
        }
        mem_drop_head(m, true);
        if (m->nsent > 0) {
            m->nsent--;
        } else {
            m->off = 0; /* committed up to the end of the chunk being sent */
        }
    }
}

/* The reader's chunks that may not be evicted: [0, mem_pinned). */
static size_t
mem_pinned(const struct mem_reader *m)
{
    return m->nsent < m->count ? m->nsent + 1 : m->count;
}

/* The oldest chunk past every reader's pinned front with seq > *bound
 * (any seq when !*have), or NULL. */
static struct sl_chunk *
mem_evict_candidate(const struct mem_backlog *mb, uint64_t bound, bool have)
{
    struct sl_chunk *cand = NULL;
    for (size_t j = 0; j < mb->nreaders; j++) {
        const struct mem_reader *m = mb->readers[j];
        for (size_t i = mem_pinned(m); i < m->count; i++) {
            struct sl_chunk *c = mem_at(m, i);
            if (!have || c->seq > bound) {
                if (cand == NULL || c->seq < cand->seq) {
                    cand = c;
                }
                break; /* the ring is in seq order */
            }
        }
    }
    return cand;
}

/* Cuts ring index i (past the pinned front) out of m's ring: the slots
 * before it move up one, so indices below i keep their meaning. */
static void
mem_cut(struct mem_reader *m, size_t i)
{
    struct sl_chunk *c = mem_at(m, i);
    for (size_t k = i; k > 0; k--) {
        m->ring[(m->head + k) % m->cap] = m->ring[(m->head + k - 1) % m->cap];
    }
    m->head = (m->head + 1) % m->cap;
    m->count--;
    m->pub.unsent -= c->len;
}

static bool
mem_evict_oldest(struct sl_backlog *b, uint64_t *events, uint64_t *bytes)
{
    struct mem_backlog *mb = (struct mem_backlog *)b;
    uint64_t bound = 0;
    bool have = false;
    struct sl_chunk *c;

    /* Each turn either evicts or raises bound past a reader's pinned
     * range, so the walk ends. */
    while ((c = mem_evict_candidate(mb, bound, have)) != NULL) {
        bool pinned = false;
        for (size_t j = 0; j < mb->nreaders; j++) {
            const struct mem_reader *m = mb->readers[j];
            size_t p = mem_pinned(m);
            if (p == 0) {
                continue;
            }
            uint64_t hi = mem_at(m, p - 1)->seq;
            if (mem_at(m, 0)->seq <= c->seq && c->seq <= hi) {
                pinned = true;
                if (!have || hi > bound) {
                    bound = hi;
                    have = true;
                }
            }
        }
        if (pinned) {
            continue;
        }
        *events += c->nevents;
        *bytes += c->len;
        for (size_t j = 0; j < mb->nreaders; j++) {
            struct mem_reader *m = mb->readers[j];
            for (size_t i = mem_pinned(m); i < m->count; i++) {
                if (mem_at(m, i) == c) {
                    mem_cut(m, i);
                    c->refs--;
                    break;
                }
            }
        }
        if (c->refs == 0) {
            sl_queue_release(c->queue, c);
        }
        return true;
    }
    return false;
}

static void
mem_free(struct sl_backlog *b)
{
    struct mem_backlog *mb = (struct mem_backlog *)b;
    if (mb == NULL) {
        return;
    }
    for (size_t j = 0; j < mb->nreaders; j++) {
        struct mem_reader *m = mb->readers[j];
        while (m->count > 0) {
            mem_drop_head(m, false);
        }
        free(m->ring);
        free(m);
    }
    free(mb->readers);
    free(mb);
}

static const struct sl_backlog_ops mem_ops = {
    .kind = "memory",
    .persistent = false,
    .pinned = true,
    .add_reader = mem_add_reader,
    .add_reader_live = mem_add_reader_live,
    .remove_reader = mem_remove_reader,
    .append = mem_append,
    .peek = mem_peek,
    .sent = mem_sent,
    .commit = mem_commit,
    .evict_oldest = mem_evict_oldest,
    .free = mem_free,
};

struct sl_backlog *
sl_backlog_memory_new(struct sl_queue *q)
{
    struct mem_backlog *mb = calloc(1, sizeof(*mb));
    if (mb == NULL) {
        return NULL;
    }
    mb->pub.ops = &mem_ops;
    mb->pub.queue = q;
    return &mb->pub;
}
