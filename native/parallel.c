/* A minimal fork-join helper for the fused loops: the calling thread and up to EV_MAX_WORKERS
 * sleeping pthreads split an index range. Used for large memory-bound loops (cross-entropy,
 * AdamW, SwiGLU) and by the built-in GEMM (gemm-builtin.c); OpenBLAS threads its own products.
 * Workers sleep on a condition variable between calls (no spinning), so they do not compete with
 * OpenBLAS's threads. */
#include "kernels.h"
#include <pthread.h>
#include <unistd.h>

#define EV_MAX_WORKERS 15

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t cv_done = PTHREAD_COND_INITIALIZER;
static pthread_t workers[EV_MAX_WORKERS];
static int n_started = 0;
static int loop_threads = 0; /* 0 = not yet decided */
static long generation = 0;
static ev_range_fn job_fn;
static void* job_ctx;
static int64_t job_n;
static int job_parts;
static int job_open = 0; /* workers may still join the job in flight */
static int joined = 0;   /* workers inside the job in flight */
static int64_t next_part; /* parts are claimed one at a time (atomic) by whichever thread is running */
static int busy = 0; /* a job is in flight (another JS thread, e.g. a worker_thread, runs serially) */

/* Parts are claimed rather than assigned: a part's range does not depend on who runs it, so results
 * are the same, but a worker that the scheduler wakes late (a loaded machine, or a nice'd process
 * beside a busy one) is not waited for: the caller runs the parts nobody has taken, closes the job,
 * and waits only for the workers that joined it. */
static void run_parts(void) {
  const int64_t chunk = (job_n + job_parts - 1) / job_parts;
  for (;;) {
    int64_t part = __atomic_fetch_add(&next_part, 1, __ATOMIC_RELAXED);
    if (part >= job_parts) break;
    int64_t b = part * chunk, e = b + chunk < job_n ? b + chunk : job_n;
    if (b < e) job_fn(job_ctx, b, e, (int)part);
  }
}

static void* worker_main(void* arg) {
  int id = (int)(intptr_t)arg;
  long seen = 0;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (generation == seen) pthread_cond_wait(&cv_work, &mu);
    seen = generation;
    if (!job_open || id + 1 >= job_parts) continue;
    joined++;
    pthread_mutex_unlock(&mu);
    run_parts();
    pthread_mutex_lock(&mu);
    if (--joined == 0) pthread_cond_signal(&cv_done);
  }
  return NULL;
}

int ev_loop_threads(void) {
  if (loop_threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    loop_threads = n < 1 ? 1 : (n > EV_MAX_WORKERS + 1 ? EV_MAX_WORKERS + 1 : (int)n);
  }
  return loop_threads;
}

void ev_set_loop_threads(int n) {
  loop_threads = n < 1 ? 1 : (n > EV_MAX_WORKERS + 1 ? EV_MAX_WORKERS + 1 : n);
}

void ev_parallel_for(int64_t n, int64_t min_per_part, ev_range_fn fn, void* ctx) {
  int parts = ev_loop_threads();
  if (min_per_part < 1) min_per_part = 1;
  if ((int64_t)parts > n / min_per_part) parts = (int)(n / min_per_part);
  ev_parallel_parts(n, parts, fn, ctx);
}

void ev_parallel_parts(int64_t n, int parts, ev_range_fn fn, void* ctx) {
  if (parts > EV_MAX_WORKERS + 1) parts = EV_MAX_WORKERS + 1;
  if ((int64_t)parts > n) parts = (int)n;
  if (parts <= 1) {
    if (n > 0) fn(ctx, 0, n, 0);
    return;
  }
  pthread_mutex_lock(&mu);
  if (busy) {
    pthread_mutex_unlock(&mu);
    fn(ctx, 0, n, 0);
    return;
  }
  busy = 1;
  while (n_started < parts - 1) {
    if (pthread_create(&workers[n_started], NULL, worker_main, (void*)(intptr_t)n_started) != 0) break;
    pthread_detach(workers[n_started]);
    n_started++;
  }
  job_fn = fn;
  job_ctx = ctx;
  job_n = n;
  job_parts = parts;
  next_part = 0;
  job_open = 1;
  joined = 0;
  generation++;
  pthread_cond_broadcast(&cv_work);
  pthread_mutex_unlock(&mu);
  run_parts();
  pthread_mutex_lock(&mu);
  job_open = 0;
  while (joined > 0) pthread_cond_wait(&cv_done, &mu);
  busy = 0;
  pthread_mutex_unlock(&mu);
}
