/* Host side of tests/codegen/ptx_emulator.py: runs a kernel, compiled for the host from its
 * NVPTX LLVM IR, with one pthread per GPU thread. Blocks run one after another (so a block's
 * shared memory can be an ordinary global); the threads of a block run concurrently, meeting
 * at barriers, and the lanes of each warp exchange shuffled values through a buffer. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef void (*kernel_fn)(void **args);

static __thread int t_tid, t_ctaid;
static int g_ntid, g_nctaid;
static pthread_barrier_t block_barrier;
static pthread_barrier_t warp_barrier[32];
static uint32_t warp_lanes[32][32];

int emu_tid(void) { return t_tid; }
int emu_ctaid(void) { return t_ctaid; }
int emu_ntid(void) { return g_ntid; }
int emu_nctaid(void) { return g_nctaid; }
void emu_barrier(void) { pthread_barrier_wait(&block_barrier); }

static uint32_t exchange(uint32_t v, int lane_mask) {
    int warp = t_tid / 32, lane = t_tid % 32;
    warp_lanes[warp][lane] = v;
    pthread_barrier_wait(&warp_barrier[warp]);
    uint32_t other = warp_lanes[warp][lane ^ lane_mask];
    pthread_barrier_wait(&warp_barrier[warp]);
    return other;
}

int emu_shfl_i32(int member_mask, int v, int lane_mask, int clamp) {
    (void)member_mask; (void)clamp;
    return (int)exchange((uint32_t)v, lane_mask);
}

float emu_shfl_f32(int member_mask, float v, int lane_mask, int clamp) {
    (void)member_mask; (void)clamp;
    uint32_t bits;
    memcpy(&bits, &v, 4);
    bits = exchange(bits, lane_mask);
    memcpy(&v, &bits, 4);
    return v;
}

struct thread_job { kernel_fn fn; void **args; int tid; };

static void *run_thread(void *p) {
    struct thread_job *job = p;
    t_tid = job->tid;
    for (int block = 0; block < g_nctaid; block++) {
        t_ctaid = block;
        job->fn(job->args);
        pthread_barrier_wait(&block_barrier);   /* the next block reuses shared memory */
    }
    return 0;
}

int emu_launch(kernel_fn fn, void **args, int grid, int block) {
    if (block % 32 || block > 1024 || grid < 1) return -1;
    g_ntid = block;
    g_nctaid = grid;
    pthread_barrier_init(&block_barrier, 0, (unsigned)block);
    for (int w = 0; w < block / 32; w++) pthread_barrier_init(&warp_barrier[w], 0, 32);
    pthread_t *threads = malloc(sizeof(pthread_t) * block);
    struct thread_job *jobs = malloc(sizeof(struct thread_job) * block);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    for (int t = 0; t < block; t++) {
        jobs[t] = (struct thread_job){fn, args, t};
        pthread_create(&threads[t], &attr, run_thread, &jobs[t]);
    }
    for (int t = 0; t < block; t++) pthread_join(threads[t], 0);
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&block_barrier);
    for (int w = 0; w < block / 32; w++) pthread_barrier_destroy(&warp_barrier[w]);
    free(threads);
    free(jobs);
    return 0;
}
