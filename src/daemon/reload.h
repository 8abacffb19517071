/*
 * reload — what a config reload would change: the config in force compared
 * with a newly loaded one, section by section (kind + name, then every key
 * as written: struct sl_config_section).  Pure: two configs in, a plan and
 * its report out; src/daemon/main.c decides and applies (docs/architecture.md,
 * "Reload").
 *
 * What this version applies live (docs/configuration.md, "Reload"):
 *   - an identical config: nothing is rebuilt (every socket, connection,
 *     queue and sink stays), the generation goes up;
 *   - [daemon] keys marked SL_CONF_RELOAD (log_level, shutdown_timeout);
 *   - [daemon] keys without it (producer_threads, admin_listen, ...) are
 *     reported "needs a restart" and keep their running value.
 *   - a sink whose section changed but kept its type and queue, of a type
 *     that does not acknowledge (file, tcp), or one that hands over what it
 *     has in flight (sink.h handover: sluice, same sender_id; nats, same
 *     sender_id, message and stream; either on a memory or a disk queue,
 *     handover_disk): replaced on the writer thread, the new one takes over what
 *     the old one had not sent (and resends what it had not had
 *     acknowledged) (sl_writer_replace_sink);
 *   - a sink added (to a queue that runs): it drains its queue from the
 *     next chunk on; a sink removed: it drains what it holds, at most
 *     shutdown_timeout, and says what it gave up; any other changed sink
 *     (its type or queue, an acknowledging sink without hand-over): a new one takes every
 *     chunk from now on while the old one drains what it holds
 *     (sl_writer_change_sinks); on a disk queue it stays on, the new one
 *     takes the old one's reader (its name, its committed position in the
 *     queue's state) over once the old one sent nothing new and had what
 *     it sent acknowledged (at most shutdown_timeout): what is still
 *     unacknowledged then is sent again (at least once), nothing committed
 *     is, nothing is skipped.
 *   - a tcp (with or without TLS), udp, unix_stream, unix_dgram or sluice
 *     source added, removed or changed: an added one is bound on main (a
 *     bind that fails, an inet address another process holds (probed,
 *     see sl_source_probe_inet), or a TLS context that cannot load,
 *     refuses the whole reload, before anything changed) and started on
 *     every producer thread; a removed one stops as at an orderly stop (its
 *     connections read to EOF or the drain grace, then closed; what it
 *     read goes into the queue; a unix socket file removed); a changed one
 *     is a new one bound and started (SO_REUSEPORT: also on the same
 *     address; a unix path kept: bound beside it and renamed over it, the
 *     type's publish()) and then the old one removed.
 *   - a queue added, with the sources and sinks that use it: it is made
 *     (a disk queue opened, locked and restored as at start), its sinks
 *     opened with it on the writer thread (reader positions as at start,
 *     first checkpoint on disk before a write), then its sources start;
 *   - a queue removed, with its sources and sinks (removed, or sources
 *     moved to another queue): its sources stop first, its sinks drain
 *     what it holds (at most shutdown_timeout, then what is left is given
 *     up and said; a disk queue's is left in its directory, which stays),
 *     then it is freed;
 *   - a queue's capacity or when_full changed, a disk queue's max_size or
 *     fsync_interval: applied in place (its contents stay; main.c checks
 *     a raised capacity against the queue's room, sl_queue_max_chunks,
 *     before anything changes).  Any other queue key changed (type, path,
 *     chunk_size, fsync) refuses the reload, each key named with its
 *     reason; so does a kept sink moved onto an added queue or off a
 *     removed one.
 *   - a section of cur marked stale (its source did not start when cur
 *     was adopted, sl_config_section) is compared as changed, so it is
 *     tried again.
 * Sources of every type are added, removed and changed live (a relp
 * source changed: the old one stops before the new one binds, librelp
 * binding without SO_REUSEPORT), but for a relp source removed or changed
 * while another relp source with tls = on runs: that refuses the whole
 * reload (librelp's one TLS context per process would go with it; nothing
 * is half-applied, the old config keeps running).
 *
 * Thread: any (reads two immutable configs).
 */
#ifndef SLUICE_DAEMON_RELOAD_H
#define SLUICE_DAEMON_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/config.h"

#define SL_RELOAD_REPLACE_MAX 64

struct sl_reload_plan {
    bool same;          /* no section differs */
    bool refused;       /* some change cannot be applied live: apply nothing */
    unsigned nlive;     /* [daemon] keys applied live */
    unsigned nrestart;  /* [daemon] keys that need a restart (reported, not applied) */
    unsigned nrefusals; /* sections whose change refuses the reload */
    size_t nreplace;    /* sinks to replace: */
    size_t replace[SL_RELOAD_REPLACE_MAX]; /* indices into next->sinks */
    size_t nadd;                           /* sinks to add: */
    size_t add[SL_RELOAD_REPLACE_MAX];     /* indices into next->sinks */
    size_t nchange; /* sinks changed that a new one succeeds (not in place): */
    size_t change[SL_RELOAD_REPLACE_MAX]; /* indices into next->sinks (the old: by name) */
    size_t nremove;                       /* sinks to remove: */
    size_t remove[SL_RELOAD_REPLACE_MAX]; /* indices into cur->sinks */
    size_t nsrc_add;                      /* sources to add: */
    size_t src_add[SL_RELOAD_REPLACE_MAX]; /* indices into next->sources */
    size_t nsrc_change; /* sources changed: a new one is bound and started, then the old stops */
    size_t src_change[SL_RELOAD_REPLACE_MAX]; /* indices into next->sources (the old: by name) */
    size_t nsrc_remove;                       /* sources to remove: */
    size_t src_remove[SL_RELOAD_REPLACE_MAX]; /* indices into cur->sources */
    size_t nq_add;                            /* queues to add (with their sinks): */
    size_t q_add[SL_RELOAD_REPLACE_MAX];      /* indices into next->queues */
    size_t nq_remove;                         /* queues to remove (with their sinks): */
    size_t q_remove[SL_RELOAD_REPLACE_MAX];   /* indices into cur->queues */
    size_t nq_change;                         /* queues changed in place: */
    size_t q_change[SL_RELOAD_REPLACE_MAX];   /* indices into next->queues */
    char report[4096]; /* one line per difference, '\n'-separated; cut short if long */
};

/*
 * Compares next (just loaded, valid) with what runs and fills *plan: its
 * [daemon] section with boot's (the values the daemon started with: those
 * that need a restart never change), its sources, queues and sinks with
 * cur's (the config the objects were last built or rebuilt from).  All
 * configs are borrowed.
 */
void sl_reload_compare(const struct sl_config *boot, const struct sl_config *cur,
                       const struct sl_config *next, struct sl_reload_plan *plan);

#endif
