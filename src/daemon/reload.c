/*
 * reload — the comparison of two configs (reload.h).
 *
 * Sections are matched by kind and name ([daemon] by kind); two matched
 * sections are the same when they have the same keys with the same values
 * as written.  A key left to its default and the same key written with the
 * default value differ here: the comparison is of what the file says, so a
 * difference is always something an operator wrote.
 */
#include "daemon/reload.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sluice/conf.h"
#include "sluice/sink.h"
#include "sluice/source.h"
#include "source/source_relp.h"

static const char *const reload_kind_names[] = {"daemon", "source", "queue", "sink"};

static void plan_line(struct sl_reload_plan *plan, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
plan_line(struct sl_reload_plan *plan, const char *fmt, ...)
{
    size_t off = strlen(plan->report);
    if (off + 1 >= sizeof(plan->report)) {
        return;
    }
    if (off > 0) {
        plan->report[off++] = '\n';
        plan->report[off] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(plan->report + off, sizeof(plan->report) - off, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(plan->report) - off) {
        /* cut short: say so where the text ends */
        memcpy(plan->report + sizeof(plan->report) - 5, "...", 4);
    }
}

static const struct sl_config_section *
reload_find(const struct sl_config *cfg, int kind, const char *name)
{
    for (size_t i = 0; i < cfg->nsections; i++) {
        const struct sl_config_section *s = &cfg->sections[i];
        if (s->kind == kind &&
            (kind == SL_CONF_DAEMON || (s->name != NULL && strcmp(s->name, name) == 0))) {
            return s;
        }
    }
    return NULL;
}

static const struct sl_config_key_value *
reload_key(const struct sl_config_section *s, const char *name)
{
    for (size_t i = 0; s != NULL && i < s->nkeys; i++) {
        if (strcmp(s->keys[i].name, name) == 0) {
            return &s->keys[i];
        }
    }
    return NULL;
}

/* Appends name to list (", "-separated); the list is cut short if long. */
static void
list_add(char *list, size_t cap, const char *name)
{
    size_t off = strlen(list);
    snprintf(list + off, cap - off, "%s%s", off > 0 ? ", " : "", name);
}

/*
 * The keys that differ between a and b (either may be NULL: no section,
 * every key at its default), split into those that may change live and
 * those that may not.  Returns the number of differing keys.
 */
static unsigned
reload_diff_keys(const struct sl_config_section *a, const struct sl_config_section *b, char *live,
                 size_t livecap, char *fixed, size_t fixedcap)
{
    unsigned n = 0;
    *live = '\0';
    *fixed = '\0';
    for (int pass = 0; pass < 2; pass++) {
        const struct sl_config_section *x = pass == 0 ? a : b;
        const struct sl_config_section *y = pass == 0 ? b : a;
        for (size_t i = 0; x != NULL && i < x->nkeys; i++) {
            const struct sl_config_key_value *kx = &x->keys[i];
            const struct sl_config_key_value *ky = reload_key(y, kx->name);
            if (ky != NULL && (pass == 1 || strcmp(kx->value, ky->value) == 0)) {
                continue; /* the same, or a change already seen in pass 0 */
            }
            n++;
            if (kx->reload) {
                list_add(live, livecap, kx->name);
            } else {
                list_add(fixed, fixedcap, kx->name);
            }
        }
    }
    return n;
}

static void
reload_compare_daemon(const struct sl_config *cur, const struct sl_config *next,
                      struct sl_reload_plan *plan)
{
    char live[512], fixed[512];
    const struct sl_config_section *a = reload_find(cur, SL_CONF_DAEMON, NULL);
    const struct sl_config_section *b = reload_find(next, SL_CONF_DAEMON, NULL);
    if (reload_diff_keys(a, b, live, sizeof(live), fixed, sizeof(fixed)) == 0) {
        return;
    }
    plan->same = false;
    if (*live != '\0') {
        plan->nlive++;
        plan_line(plan, "daemon: %s: %s", live,
                  plan->refused ? "not applied (the reload is refused)" : "applied");
    }
    if (*fixed != '\0') {
        plan->nrestart++;
        plan_line(plan, "daemon: %s: needs a restart (the running value is kept)", fixed);
    }
}

/* The index of sink name in cfg->sinks, or -1. */
static long
reload_sink_index(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nsinks; i++) {
        if (strcmp(cfg->sinks[i].name, name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static bool
reload_same_value(const struct sl_config_section *a, const struct sl_config_section *b,
                  const char *key)
{
    const struct sl_config_key_value *x = reload_key(a, key), *y = reload_key(b, key);
    return (x == NULL && y == NULL) || (x != NULL && y != NULL && strcmp(x->value, y->value) == 0);
}

/* True when cfg has a queue named name of type disk. */
static bool
reload_queue_is_disk(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nqueues; i++) {
        if (strcmp(cfg->queues[i].name, name) == 0) {
            return cfg->queues[i].type == SL_QUEUE_DISK;
        }
    }
    return false;
}

/*
 * A changed sink that can be replaced live: the same type and queue, a type
 * whose sent bytes are committed (no acks: nothing in flight to hand over),
 * or an acknowledging one that hands what it has in flight to its new self
 * (sink.h handover; on a disk queue only with handover_disk).  Records it
 * in plan and returns true.
 */
static bool
reload_sink_replace(const struct sl_config *cur, const struct sl_config *next,
                    const struct sl_config_section *a, const struct sl_config_section *b,
                    struct sl_reload_plan *plan)
{
    long i = reload_sink_index(next, b->name), o = reload_sink_index(cur, a->name);
    if (i < 0 || o < 0 || !reload_same_value(a, b, "type") || !reload_same_value(a, b, "queue") ||
        plan->nreplace == SL_RELOAD_REPLACE_MAX) {
        return false;
    }
    const struct sl_sink_ops *ops = next->sinks[i].type->impl.sink;
    const struct sl_sink_ops *old_ops = cur->sinks[o].type->impl.sink;
    if (ops == NULL || old_ops == NULL) {
        return false;
    }
    if ((ops->acks || old_ops->acks) &&
        (ops != old_ops || ops->handover == NULL || ops->handover_ok == NULL ||
         !ops->handover_ok(&cur->sinks[o], &next->sinks[i]) ||
         (!ops->handover_disk && reload_queue_is_disk(cur, cur->sinks[o].queue)))) {
        return false;
    }
    plan->replace[plan->nreplace++] = (size_t)i;
    return true;
}

/* Records index i in list (n entries); false when the list is full. */
static bool
reload_list_add(size_t *list, size_t *n, size_t i)
{
    if (*n == SL_RELOAD_REPLACE_MAX) {
        return false;
    }
    list[(*n)++] = i;
    return true;
}

static bool reload_sink_hands_reader(const struct sl_config *cur, const struct sl_config *next,
                                     const char *name);

/*
 * A nats sink on a disk queue it stays on, changed in a way it cannot hand
 * over (its message mode or stream; its sender_id the same): not succeeded
 * live.  Its successor would take the reader at the committed position and
 * number the records from 1 again under the message ids the old one gave
 * earlier records, and JetStream's duplicate window would drop new records
 * as repeats.  A restart numbers on from the queue's state (sink_nats.c
 * nats_restore).  (A new sender_id gives new ids: that one is succeeded.)
 */
static bool
reload_sink_renumbers(const struct sl_config *cur, const struct sl_config *next,
                      const struct sl_config_section *a, const struct sl_config_section *b)
{
    long i = reload_sink_index(next, b->name), o = reload_sink_index(cur, a->name);
    if (i < 0 || o < 0) {
        return false;
    }
    const struct sl_sink_ops *ops = next->sinks[i].type->impl.sink;
    return ops != NULL && ops == cur->sinks[o].type->impl.sink && strcmp(ops->type, "nats") == 0 &&
           reload_same_value(a, b, "sender_id") && reload_sink_hands_reader(cur, next, a->name);
}

/* A changed sink that cannot be replaced in place, succeeded by a new one
 * (sl_writer_change_sinks; on a disk queue it stays on, the new one takes
 * the old one's reader over: reload_sink_hands_reader). */
static bool
reload_sink_change(const struct sl_config *cur, const struct sl_config *next,
                   const struct sl_config_section *a, const struct sl_config_section *b,
                   struct sl_reload_plan *plan)
{
    long i = reload_sink_index(next, b->name), o = reload_sink_index(cur, a->name);
    if (i < 0 || o < 0) {
        return false;
    }
    if (reload_sink_renumbers(cur, next, a, b)) {
        return false;
    }
    return reload_list_add(plan->change, &plan->nchange, (size_t)i);
}

/* A changed sink (name) that stays on a disk queue: its new self takes its
 * reader over (its place in the queue's state) once it has drained. */
static bool
reload_sink_hands_reader(const struct sl_config *cur, const struct sl_config *next,
                         const char *name)
{
    long o = reload_sink_index(cur, name), i = reload_sink_index(next, name);
    return o >= 0 && i >= 0 && strcmp(cur->sinks[o].queue, next->sinks[i].queue) == 0 &&
           reload_queue_is_disk(cur, cur->sinks[o].queue);
}

/*
 * Why a changed sink (name, in cur and next) that is succeeded by a new one
 * beside it (plan->change, not on a disk queue it stays on) hands nothing
 * over, for the answer: "" when its type acknowledges nothing (nothing is
 * in flight), else " (no hand-over: ...)" into buf (len bytes).
 */
static const char *
reload_sink_change_why(const struct sl_config *cur, const struct sl_config *next, const char *name,
                       char *buf, size_t len)
{
    long o = reload_sink_index(cur, name), i = reload_sink_index(next, name);
    if (o < 0 || i < 0) {
        return "";
    }
    const struct sl_sink_config *a = &cur->sinks[o], *b = &next->sinks[i];
    const struct sl_sink_ops *ops = b->type->impl.sink, *old_ops = a->type->impl.sink;
    const char *why = NULL;
    if (ops == NULL || old_ops == NULL || (!ops->acks && !old_ops->acks)) {
        return "";
    }
    if (ops != old_ops) {
        why = "its type changed";
    } else if (strcmp(a->queue, b->queue) != 0) {
        why = "its queue changed";
    } else if (ops->handover == NULL || ops->handover_ok == NULL) {
        why = "its type hands nothing over";
    } else if (ops->handover_refusal != NULL) {
        why = ops->handover_refusal(a, b);
    }
    snprintf(buf, len, " (no hand-over: %s)", why != NULL ? why : "its type refuses this change");
    return buf;
}

/*
 * Why a changed sink that stays on a disk queue is not replaced in place
 * but hands its reader to a new one (reload_sink_hands_reader), for the
 * answer: its type's reason when the type hands over but not this change
 * (a nats sink's sender_id, message or stream), " (not replaced in place:
 * ...)" into buf; else "".
 */
static const char *
reload_sink_disk_why(const struct sl_config *cur, const struct sl_config *next, const char *name,
                     char *buf, size_t len)
{
    long o = reload_sink_index(cur, name), i = reload_sink_index(next, name);
    const char *why = NULL;
    if (o >= 0 && i >= 0) {
        const struct sl_sink_ops *ops = next->sinks[i].type->impl.sink;
        if (ops != NULL && ops == cur->sinks[o].type->impl.sink && ops->handover_refusal != NULL) {
            why = ops->handover_refusal(&cur->sinks[o], &next->sinks[i]);
        }
    }
    if (why == NULL) {
        return "";
    }
    snprintf(buf, len, " (not replaced in place: %s)", why);
    return buf;
}

/* ---- sources ----------------------------------------------------------------------------- */

static long reload_source_index(const struct sl_config *cfg, const char *name);

/* A relp source with tls = on, other than the one named name, that runs in
 * cfg, or NULL. */
static const struct sl_source_config *
reload_other_relp_tls(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nsources; i++) {
        const struct sl_source_config *sc = &cfg->sources[i];
        if (sl_source_type_of(sc) == &sl_source_relp && sl_source_relp_config(sc)->tls.on &&
            strcmp(sc->name, name) != 0) {
            return sc;
        }
    }
    return NULL;
}

/*
 * Why source sc (in cur: removed or changed; in next: added or changed)
 * is not applied live (": " and the reason), or NULL when it is.  Every
 * type is, but for one case of librelp's: its OpenSSL back end keeps one
 * TLS context per process, freed when any relp engine is destroyed while
 * only one TLS listener counts on it.  So no relp engine is started or
 * stopped while another relp source with tls = on runs before or after
 * the reload: a stop would take that one's context with it, and so would
 * a start that fails (its half-built engine is destroyed), or a stop in
 * the same reload that starts a TLS one.
 */
static const char *
reload_source_refusal(const struct sl_config *cur, const struct sl_config *next,
                      const struct sl_source_config *sc)
{
    if (sl_source_type_of(sc) == &sl_source_relp &&
        (reload_other_relp_tls(cur, sc->name) != NULL ||
         reload_other_relp_tls(next, sc->name) != NULL)) {
        return ": a relp source starts or stops only while no other relp source with tls = on "
               "runs (librelp's OpenSSL back end keeps one TLS context per process and frees "
               "it when an engine stops)";
    }
    return NULL;
}

static long
reload_source_index(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nsources; i++) {
        if (strcmp(cfg->sources[i].name, name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* ": why" a source named name (in cur, next or both) is not applied live,
 * or "" (not a source, or no reason of its type). */
static const char *
reload_source_why(int kind, const struct sl_config *cur, const struct sl_config *next,
                  const char *name)
{
    long o = kind == SL_CONF_SOURCE ? reload_source_index(cur, name) : -1;
    long i = kind == SL_CONF_SOURCE ? reload_source_index(next, name) : -1;
    const char *r = o >= 0 ? reload_source_refusal(cur, next, &cur->sources[o]) : NULL;
    if (r == NULL && i >= 0) {
        r = reload_source_refusal(cur, next, &next->sources[i]);
    }
    return r != NULL ? r : "";
}

/* Records a source added (a == NULL), removed (b == NULL) or changed, if
 * it can be applied live. */
static bool
reload_source(const struct sl_config *cur, const struct sl_config *next,
              const struct sl_config_section *a, const struct sl_config_section *b,
              struct sl_reload_plan *plan)
{
    long o = a != NULL ? reload_source_index(cur, a->name) : -1;
    long i = b != NULL ? reload_source_index(next, b->name) : -1;
    if ((a != NULL && (o < 0 || reload_source_refusal(cur, next, &cur->sources[o]) != NULL)) ||
        (b != NULL && (i < 0 || reload_source_refusal(cur, next, &next->sources[i]) != NULL))) {
        return false;
    }
    if (a == NULL) {
        return reload_list_add(plan->src_add, &plan->nsrc_add, (size_t)i);
    }
    if (b == NULL) {
        return reload_list_add(plan->src_remove, &plan->nsrc_remove, (size_t)o);
    }
    return reload_list_add(plan->src_change, &plan->nsrc_change, (size_t)i);
}

/* ---- queues ------------------------------------------------------------------------------ */

static long
reload_queue_index(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nqueues; i++) {
        if (strcmp(cfg->queues[i].name, name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* Why a changed queue key cannot apply live (NULL: it can, in place:
 * capacity, when_full, and a disk queue's max_size and fsync_interval).
 */
static const char *
reload_queue_key_why(const char *key)
{
    static const struct {
        const char *key, *why;
    } whys[] = {
        {"type", "type: what it holds would have to move between memory and disk while producers "
                 "and sinks use it (a memory queue's chunks are not on disk, a disk queue's "
                 "records are not in memory); restart (an orderly stop drains a memory queue, a "
                 "disk queue's records stay in its directory)"},
        {"path", "path: a disk queue's directory is locked and open while it runs; stop "
                 "sluiced, move the directory, set path, start (docs/operations.md, \"Moving a "
                 "queue directory\")"},
        {"chunk_size", "chunk_size: every chunk is allocated at its size and producers hold "
                       "chunks across the change"},
        {"fsync", "fsync: the disk backlog starts its sync thread (or not) when it opens"},
    };
    static const char *const live[] = {"capacity", "when_full", "max_size", "fsync_interval"};
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
        if (strcmp(key, live[i]) == 0) {
            return NULL;
        }
    }
    for (size_t i = 0; i < sizeof(whys) / sizeof(whys[0]); i++) {
        if (strcmp(whys[i].key, key) == 0) {
            return whys[i].why;
        }
    }
    return "not applied live by this version";
}

/* A queue removed from the config (cur index o): recorded, to be removed
 * with its sinks once its sources have stopped.  Nothing in next names it
 * (the config checks every source's and sink's queue). */
static bool
reload_queue_remove(const struct sl_config *cur, const struct sl_config_section *a,
                    struct sl_reload_plan *plan)
{
    long o = reload_queue_index(cur, a->name);
    return o >= 0 && reload_list_add(plan->q_remove, &plan->nq_remove, (size_t)o);
}

/* A queue added to the config: recorded, to be made before its sources
 * start and with its sinks. */
static bool
reload_queue_add(const struct sl_config *next, const struct sl_config_section *b,
                 struct sl_reload_plan *plan)
{
    long i = reload_queue_index(next, b->name);
    return i >= 0 && reload_list_add(plan->q_add, &plan->nq_add, (size_t)i);
}

/* A queue whose section changed: in place when only keys that apply live
 * changed (capacity, when_full; a disk queue's max_size, fsync_interval:
 * the type is the same then, a type change being refused), else refused,
 * every key that cannot change named with its reason.  Its contents stay
 * either way. */
static void
reload_queue_change(const struct sl_config *cur, const struct sl_config *next,
                    const struct sl_config_section *a, const struct sl_config_section *b,
                    struct sl_reload_plan *plan)
{
    char keys[512] = "", whys[1024] = "";
    unsigned nfixed = 0;
    for (int pass = 0; pass < 2; pass++) {
        const struct sl_config_section *x = pass == 0 ? a : b;
        const struct sl_config_section *y = pass == 0 ? b : a;
        for (size_t k = 0; k < x->nkeys; k++) {
            const struct sl_config_key_value *ky = reload_key(y, x->keys[k].name);
            if (ky != NULL && (pass == 1 || strcmp(x->keys[k].value, ky->value) == 0)) {
                continue;
            }
            list_add(keys, sizeof(keys), x->keys[k].name);
            const char *why = reload_queue_key_why(x->keys[k].name);
            if (why != NULL) {
                nfixed++;
                list_add(whys, sizeof(whys), why);
            }
        }
    }
    long o = reload_queue_index(cur, a->name), i = reload_queue_index(next, b->name);
    if (nfixed == 0 && o >= 0 && i >= 0 && cur->queues[o].type == next->queues[i].type &&
        reload_list_add(plan->q_change, &plan->nq_change, (size_t)i)) {
        return; /* reported last, when it is known whether it applies */
    }
    plan->refused = true;
    plan->nrefusals++;
    plan_line(plan,
              "queue \"%s\": changed (%s): not applied live (it keeps its contents and settings; "
              "restart, or add a queue under a new name and move its sources and sinks to it): %s",
              a->name, keys, *whys != '\0' ? whys : "too many changes at once");
}

/* A sink kept (by name) whose queue is one the reload adds or removes: a
 * new one would take chunks beside the old one's drain across two queues;
 * refused with its reason (true), for the operator to rename the sink or
 * reload twice. */
static bool
reload_sink_queue_moved(const struct sl_config *cur, const struct sl_config *next,
                        const struct sl_config_section *a, struct sl_reload_plan *plan)
{
    long o = reload_sink_index(cur, a->name), i = reload_sink_index(next, a->name);
    if (o < 0 || i < 0) {
        return false;
    }
    bool off = reload_queue_index(next, cur->sinks[o].queue) < 0;
    bool onto = reload_queue_index(cur, next->sinks[i].queue) < 0;
    if (!off && !onto) {
        return false;
    }
    plan->refused = true;
    plan->nrefusals++;
    plan_line(plan,
              "sink \"%s\": moved %s queue \"%s\" this reload %s: not applied live (give the "
              "sink a new name, or reload twice)",
              a->name, off ? "off" : "onto", off ? cur->sinks[o].queue : next->sinks[i].queue,
              off ? "removes" : "adds");
    return true;
}

/* Sources, queues and sinks: any difference refuses the reload, except
 * sinks added, removed or changed (reload_sink_replace, reload_sink_change),
 * sources (reload_source) and queues (reload_queue_*) as each allows. */
static void
reload_compare_objects(const struct sl_config *cur, const struct sl_config *next, int kind,
                       struct sl_reload_plan *plan)
{
    char live[512], fixed[512];
    const char *kname = reload_kind_names[kind];
    for (size_t i = 0; i < cur->nsections; i++) {
        const struct sl_config_section *a = &cur->sections[i];
        if (a->kind != kind) {
            continue;
        }
        const struct sl_config_section *b = reload_find(next, kind, a->name);
        if (b == NULL) {
            plan->same = false;
            long o = kind == SL_CONF_SINK ? reload_sink_index(cur, a->name) : -1;
            if (o >= 0 && reload_list_add(plan->remove, &plan->nremove, (size_t)o)) {
                continue; /* reported last, when it is known whether it applies */
            }
            if (kind == SL_CONF_SOURCE && reload_source(cur, next, a, NULL, plan)) {
                continue;
            }
            if (kind == SL_CONF_QUEUE && reload_queue_remove(cur, a, plan)) {
                continue; /* reported last */
            }
            plan->refused = true;
            plan->nrefusals++;
            plan_line(plan, "%s \"%s\": removed: not applied live by this version (restart)%s",
                      kname, a->name, reload_source_why(kind, cur, next, a->name));
            continue;
        }
        if (reload_diff_keys(a, b, live, sizeof(live), fixed, sizeof(fixed)) == 0 && !a->stale) {
            continue; /* stale: its object did not start (sl_config_section), tried again */
        }
        plan->same = false;
        if (kind == SL_CONF_QUEUE) {
            reload_queue_change(cur, next, a, b, plan);
            continue;
        }
        if (kind == SL_CONF_SINK && reload_sink_queue_moved(cur, next, a, plan)) {
            continue;
        }
        if (kind == SL_CONF_SINK && (reload_sink_replace(cur, next, a, b, plan) ||
                                     reload_sink_change(cur, next, a, b, plan))) {
            continue; /* reported last, when it is known whether it applies */
        }
        if (kind == SL_CONF_SOURCE && reload_source(cur, next, a, b, plan)) {
            continue;
        }
        plan->refused = true;
        plan->nrefusals++;
        const char *why = "";
        if (kind == SL_CONF_SINK) {
            why = reload_sink_renumbers(cur, next, a, b)
                      ? ": a nats sink on a disk queue it stays on, its message mode or stream "
                        "changed: a successor would number the queue's records again under "
                        "message ids already used (a restart numbers on)"
                      : ": more sink changes than one reload applies";
        } else if (kind == SL_CONF_SOURCE) {
            why = reload_source_why(kind, cur, next, a->name);
        }
        plan_line(plan, "%s \"%s\": changed (%s%s%s): not applied live by this version (restart)%s",
                  kname, a->name, fixed, *fixed != '\0' && *live != '\0' ? ", " : "", live, why);
    }
    for (size_t i = 0; i < next->nsections; i++) {
        const struct sl_config_section *b = &next->sections[i];
        if (b->kind == kind && reload_find(cur, kind, b->name) == NULL) {
            plan->same = false;
            long k = kind == SL_CONF_SINK ? reload_sink_index(next, b->name) : -1;
            if (k >= 0 && reload_list_add(plan->add, &plan->nadd, (size_t)k)) {
                continue; /* reported last */
            }
            if (kind == SL_CONF_SOURCE && reload_source(cur, next, NULL, b, plan)) {
                continue;
            }
            if (kind == SL_CONF_QUEUE && reload_queue_add(next, b, plan)) {
                continue; /* reported last */
            }
            plan->refused = true;
            plan->nrefusals++;
            plan_line(plan, "%s \"%s\": added: not applied live by this version (restart)%s", kname,
                      b->name, reload_source_why(kind, cur, next, b->name));
        }
    }
}

/* The report line of a section of kind named name that changed in place:
 * "KIND "NAME": changed (KEYS): what". */
static void
plan_changed(struct sl_reload_plan *plan, const struct sl_config *cur,
             const struct sl_config *next, int kind, const char *name, const char *what)
{
    char live[512], fixed[512];
    (void)reload_diff_keys(reload_find(cur, kind, name), reload_find(next, kind, name), live,
                           sizeof(live), fixed, sizeof(fixed));
    plan_line(plan, "%s \"%s\": changed (%s%s%s): %s", reload_kind_names[kind], name, fixed,
              *fixed != '\0' && *live != '\0' ? ", " : "", live, what);
}

void
sl_reload_compare(const struct sl_config *boot, const struct sl_config *cur,
                  const struct sl_config *next, struct sl_reload_plan *plan)
{
    memset(plan, 0, sizeof(*plan));
    plan->same = true;
    reload_compare_objects(cur, next, SL_CONF_SOURCE, plan);
    reload_compare_objects(cur, next, SL_CONF_QUEUE, plan);
    reload_compare_objects(cur, next, SL_CONF_SINK, plan);
    for (size_t r = 0; r < plan->nreplace; r++) {
        const char *name = next->sinks[plan->replace[r]].name;
        char live[512], fixed[512];
        (void)reload_diff_keys(reload_find(cur, SL_CONF_SINK, name),
                               reload_find(next, SL_CONF_SINK, name), live, sizeof(live), fixed,
                               sizeof(fixed));
        plan_line(plan, "sink \"%s\": changed (%s%s%s): %s", name, fixed,
                  *fixed != '\0' && *live != '\0' ? ", " : "", live,
                  plan->refused ? "not replaced (the reload is refused)"
                  : next->sinks[plan->replace[r]].type->impl.sink->acks
                      ? "replaced; the new one takes over what the old one had not written "
                        "and resends what it had not had acknowledged"
                      : "replaced; the new one takes over what the old one had not written");
    }
    const char *skip = "not applied (the reload is refused)";
    for (size_t r = 0; r < plan->nq_add; r++) {
        const struct sl_queue_config *qc = &next->queues[plan->q_add[r]];
        plan_line(plan, "queue \"%s\": added (%s): %s", qc->name,
                  qc->type == SL_QUEUE_DISK ? "disk" : "memory",
                  plan->refused ? skip
                                : "made (a disk queue opened and restored as at start) with "
                                  "its sinks, before its sources start");
    }
    for (size_t r = 0; r < plan->nq_change; r++) {
        plan_changed(plan, cur, next, SL_CONF_QUEUE, next->queues[plan->q_change[r]].name,
                     plan->refused ? skip : "applied in place; it keeps its contents");
    }
    for (size_t r = 0; r < plan->nadd; r++) {
        const struct sl_sink_config *sc = &next->sinks[plan->add[r]];
        plan_line(plan, "sink \"%s\": added: %s", sc->name,
                  plan->refused ? skip : "it drains its queue from the next chunk on");
    }
    for (size_t r = 0; r < plan->nchange; r++) {
        const char *name = next->sinks[plan->change[r]].name;
        char live[512], fixed[512];
        (void)reload_diff_keys(reload_find(cur, SL_CONF_SINK, name),
                               reload_find(next, SL_CONF_SINK, name), live, sizeof(live), fixed,
                               sizeof(fixed));
        char why[320];
        bool hands = reload_sink_hands_reader(cur, next, name);
        long o = reload_sink_index(cur, name);
        const struct sl_sink_ops *old_ops = o >= 0 ? cur->sinks[o].type->impl.sink : NULL;
        plan_line(plan, "sink \"%s\": changed (%s%s%s): %s%s", name, fixed,
                  *fixed != '\0' && *live != '\0' ? ", " : "", live,
                  plan->refused ? skip
                  : !hands ? "a new one takes every chunk from now on; the old one drains what it "
                             "holds (at most shutdown_timeout)"
                  : old_ops != NULL && old_ops->acks
                      ? "handed over on its disk queue: the old one sends nothing new and waits "
                        "for the acknowledgement of what it sent (at most shutdown_timeout), "
                        "then a new one takes its reader and sends on from the committed "
                        "position (what is still unacknowledged is sent again: at least once)"
                      : "handed over on its disk queue: the old one stops, a new one takes its "
                        "reader and sends on from where it stopped (nothing twice, nothing "
                        "skipped)",
                  plan->refused ? ""
                  : hands       ? reload_sink_disk_why(cur, next, name, why, sizeof(why))
                                : reload_sink_change_why(cur, next, name, why, sizeof(why)));
    }
    for (size_t r = 0; r < plan->nsrc_add; r++) {
        plan_line(plan, "source \"%s\": added: %s", next->sources[plan->src_add[r]].name,
                  plan->refused ? skip : "bound and started on every producer thread");
    }
    for (size_t r = 0; r < plan->nsrc_change; r++) {
        const struct sl_source_config *sc = &next->sources[plan->src_change[r]];
        /* Stale and as written before: only tried again (reload_compare_objects). */
        const struct sl_config_section *was = reload_find(cur, SL_CONF_SOURCE, sc->name);
        char live[512], fixed[512];
        bool retry = was != NULL && was->stale &&
                     reload_diff_keys(was, reload_find(next, SL_CONF_SOURCE, sc->name), live,
                                      sizeof(live), fixed, sizeof(fixed)) == 0;
        plan_line(plan, "source \"%s\": %s: %s", sc->name,
                  retry ? "did not start at the last reload, tried again" : "changed",
                  plan->refused ? skip
                  : sl_source_type_of(sc)->bind == NULL
                      /* relp: librelp binds in start(), without SO_REUSEPORT */
                      ? "the old one stops first (what it acknowledged is in the queue, its "
                        "sessions closed), then a new one is started"
                      : "a new one is bound and started, then the old one stops "
                        "(its connections read to the end, then closed)");
    }
    for (size_t r = 0; r < plan->nsrc_remove; r++) {
        plan_line(plan, "source \"%s\": removed: %s", cur->sources[plan->src_remove[r]].name,
                  plan->refused ? skip
                                : "it stops accepting, reads its connections to the end and "
                                  "closes them");
    }
    for (size_t r = 0; r < plan->nremove; r++) {
        plan_line(plan, "sink \"%s\": removed: %s", cur->sinks[plan->remove[r]].name,
                  plan->refused ? skip
                                : "it drains what it holds (at most shutdown_timeout), then goes");
    }
    for (size_t r = 0; r < plan->nq_remove; r++) {
        const struct sl_queue_config *qc = &cur->queues[plan->q_remove[r]];
        plan_line(plan, "queue \"%s\": removed: %s%s", qc->name,
                  plan->refused ? skip
                                : "its sources stop first, its sinks drain what it holds (at "
                                  "most shutdown_timeout), then it is freed",
                  plan->refused || qc->type != SL_QUEUE_DISK
                      ? ""
                      : "; its directory stays on disk (add the queue again to resume it)");
    }
    reload_compare_daemon(boot, next, plan); /* last: it says whether it applies */
}
