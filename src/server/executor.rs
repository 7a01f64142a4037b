//! Evaluation off the async workers: a small pool of OS threads (about one per core) takes
//! jobs from a bounded queue. For these bodies the async side only reads them and waits for
//! answers, so new connections stay responsive whatever the requests cost (health and metrics
//! have their own runtime). Bodies up to `--inline-evaluation-max-bytes` (bounded work, cheaper
//! than the hand-off: bench/README.md, "Figures behind the code") are judged by the handler
//! itself and never come here.
//!
//! A job whose submitter has gone (the client hung up: the handler future was dropped) or
//! whose deadline has passed is dropped when it is dequeued, not run. When the queue is
//! full, [`Executor::submit`] fails at once and the caller answers 503.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

type Task = Box<dyn FnOnce() + Send>;

/// Why a job was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The one waiting for the result has gone.
    Gone,
    /// The deadline passed while the job was queued.
    Late,
}

/// Reports jobs that were not run (for metrics).
pub type OnDropped = Arc<dyn Fn(Dropped) + Send + Sync>;

/// How big a job is: small jobs (ordinary reviews) go first, and one worker takes only
/// them, so a few huge requests cannot hold up every ordinary one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Small,
    Large,
}

/// Large jobs running at once. Judging a worst-case 3 MiB Pod needs many times its size while
/// it runs (decoded mounts, tens of thousands of findings with their messages), so two at once
/// left almost no margin under the chart's 128Mi: the resend attack of bench/attacks was
/// OOM-killed (bench/README.md, "Figures behind the code"). Small jobs are not limited.
const MAX_LARGE_RUNNING: usize = 1;

#[derive(Default)]
struct Queues {
    small: VecDeque<Task>,
    large: VecDeque<Task>,
    running: usize,
    large_running: usize,
}

struct Shared {
    queues: Mutex<Queues>,
    work: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Executor {
    shared: Arc<Shared>,
    workers: usize,
    capacity: usize,
    on_dropped: OnDropped,
}

/// The queue is full.
#[derive(Debug)]
pub struct Full;

impl Executor {
    /// `workers` threads that take any job, one more that takes only small ones, and room
    /// for `queue` waiting jobs.
    pub fn new(workers: usize, queue: usize, on_dropped: OnDropped) -> std::io::Result<Self> {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            work: Condvar::new(),
        });
        for i in 0..=workers {
            let shared = shared.clone();
            let small_only = i == workers;
            let name = if small_only {
                "volguard-eval-small".to_owned()
            } else {
                format!("volguard-eval-{i}")
            };
            std::thread::Builder::new()
                .name(name)
                .spawn(move || worker(&shared, small_only))?;
        }
        Ok(Executor {
            shared,
            workers,
            capacity: queue,
            on_dropped,
        })
    }

    /// The number of jobs waiting.
    pub fn queued(&self) -> usize {
        let q = self.shared.lock();
        q.small.len() + q.large.len()
    }

    /// The number of jobs being run.
    pub fn running(&self) -> usize {
        self.shared.lock().running
    }

    /// Worker threads taking any job (one more takes only small ones).
    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues `job`; its result arrives on the receiver unless the receiver is dropped or
    /// `deadline` passes first (then the job does not run). A job that finds a worker idle
    /// is taken at once even with a queue of zero.
    pub fn submit<T, F>(
        &self,
        deadline: Instant,
        size: Size,
        job: F,
    ) -> Result<oneshot::Receiver<T>, Full>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let on_dropped = self.on_dropped.clone();
        let task: Task = Box::new(move || {
            if Instant::now() >= deadline {
                on_dropped(Dropped::Late);
            } else if tx.is_closed() {
                on_dropped(Dropped::Gone);
            } else {
                let _ = tx.send(job());
            }
        });
        let mut q = self.shared.lock();
        let waiting = q.small.len() + q.large.len();
        // Workers that could take this job now: all of them for a small job.
        let able = match size {
            Size::Small => self.workers + 1,
            Size::Large => self.workers.min(MAX_LARGE_RUNNING),
        };
        let idle = able.saturating_sub(q.running + waiting);
        if waiting >= self.capacity + idle {
            return Err(Full);
        }
        match size {
            Size::Small => q.small.push_back(task),
            Size::Large => q.large.push_back(task),
        }
        drop(q);
        self.shared.work.notify_all();
        Ok(rx)
    }
}

/// How often an idle evaluation worker wakes to run the idle hook again.
const IDLE_TICK: std::time::Duration = std::time::Duration::from_secs(1);

fn worker(shared: &Shared, small_only: bool) {
    loop {
        let (task, large) = {
            let mut q = shared.lock();
            // Before waiting for work, once per job: see `super::idle`.
            let mut idle_reported = false;
            loop {
                let next = match q.small.pop_front() {
                    Some(t) => Some((t, false)),
                    None if !small_only && q.large_running < MAX_LARGE_RUNNING => {
                        q.large.pop_front().map(|t| (t, true))
                    }
                    None => None,
                };
                if let Some((t, large)) = next {
                    q.running += 1;
                    q.large_running += usize::from(large);
                    break (t, large);
                }
                if !idle_reported {
                    drop(q);
                    super::idle();
                    idle_reported = true;
                    q = shared.lock();
                    continue;
                }
                // Waking once a second when idle lets the idle hook run after the last job
                // even if it was rate-limited then.
                let (guard, waited) = shared
                    .work
                    .wait_timeout(q, IDLE_TICK)
                    .unwrap_or_else(|e| e.into_inner());
                q = guard;
                if waited.timed_out() {
                    idle_reported = false;
                }
            }
        };
        // A panicking job must not take the worker with it; its submitter sees the result
        // channel closed.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
        let mut q = shared.lock();
        q.running -= 1;
        q.large_running -= usize::from(large);
        // This worker takes the next job itself, but if that is a small one, another worker
        // waiting for the large-job slot must look again.
        if large && !q.large.is_empty() {
            shared.work.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    fn counting() -> (OnDropped, Arc<Mutex<Vec<Dropped>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (Arc::new(move |d| s.lock().unwrap().push(d)), seen)
    }

    /// A large job that holds its worker until released, and a flag set once it runs.
    fn blocker(
        ex: &Executor,
        far: Instant,
    ) -> (
        oneshot::Receiver<()>,
        std::sync::mpsc::Sender<()>,
        Arc<AtomicBool>,
    ) {
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let rx = ex
            .submit(far, Size::Large, move || {
                s.store(true, Ordering::SeqCst);
                release_rx.recv().unwrap();
            })
            .unwrap();
        (rx, release_tx, started)
    }

    async fn until(flag: &AtomicBool) {
        while !flag.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The threads that ran the idle hook, once per call (the only test that sets the hook;
    /// other tests' workers call it too, so the test counts one thread's calls).
    static IDLE_CALLS: Mutex<Vec<std::thread::ThreadId>> = Mutex::new(Vec::new());

    fn record_idle() {
        IDLE_CALLS.lock().unwrap().push(std::thread::current().id());
    }

    fn idle_calls(t: std::thread::ThreadId) -> usize {
        IDLE_CALLS
            .lock()
            .unwrap()
            .iter()
            .filter(|c| **c == t)
            .count()
    }

    #[tokio::test]
    async fn idle_workers_run_the_idle_hook_after_work_and_once_a_tick() {
        crate::server::set_idle_hook(record_idle);
        let (on_dropped, _) = counting();
        let ex = Executor::new(1, 4, on_dropped).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        // A large job runs on the one general worker: its thread, and its calls so far.
        let (worker, before) = ex
            .submit(far, Size::Large, || {
                let me = std::thread::current().id();
                (me, idle_calls(me))
            })
            .unwrap()
            .await
            .unwrap();
        let wait_for = |n: usize, within: Duration| async move {
            let deadline = Instant::now() + within;
            while idle_calls(worker) < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            idle_calls(worker)
        };
        // After the job, at once (well before a tick).
        let after = wait_for(before + 1, IDLE_TICK / 2).await;
        assert_eq!(after, before + 1, "no idle report right after the job");
        // And once per tick while idle.
        let later = wait_for(after + 2, IDLE_TICK * 3).await;
        assert!(later >= after + 2, "{after} -> {later}");
    }

    #[tokio::test]
    async fn runs_jobs_and_refuses_when_full() {
        let (on_dropped, _) = counting();
        let ex = Executor::new(1, 1, on_dropped).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        // Occupies the only general worker until released.
        let (first, release, started) = blocker(&ex, far);
        until(&started).await;
        let second = ex.submit(far, Size::Large, || 2).unwrap();
        assert_eq!(ex.queued(), 1);
        assert!(
            ex.submit(far, Size::Large, || 3).is_err(),
            "queue of one is full"
        );
        release.send(()).unwrap();
        first.await.unwrap();
        assert_eq!(second.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn one_large_job_at_a_time() {
        let (on_dropped, _) = counting();
        let ex = Executor::new(2, 4, on_dropped).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        let (first, release_first, started_first) = blocker(&ex, far);
        until(&started_first).await;
        // Two general workers, one of them idle: still, the second large job waits.
        let (second, release_second, started_second) = blocker(&ex, far);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !started_second.load(Ordering::SeqCst),
            "two large jobs ran at once"
        );
        assert_eq!(ex.queued(), 1);
        // Small jobs still run beside the large one.
        assert_eq!(ex.submit(far, Size::Small, || 5).unwrap().await.unwrap(), 5);
        release_first.send(()).unwrap();
        first.await.unwrap();
        until(&started_second).await;
        release_second.send(()).unwrap();
        second.await.unwrap();
    }

    #[tokio::test]
    async fn small_jobs_pass_large_ones() {
        let (on_dropped, _) = counting();
        let ex = Executor::new(1, 0, on_dropped).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        let (first, release, started) = blocker(&ex, far);
        until(&started).await;
        // The general worker is busy and there is no queue: a large job is refused, a
        // small one goes to the worker kept for small jobs.
        assert!(ex.submit(far, Size::Large, || 0).is_err());
        let small = ex.submit(far, Size::Small, || 7).unwrap();
        assert_eq!(small.await.unwrap(), 7);
        release.send(()).unwrap();
        first.await.unwrap();
    }

    #[tokio::test]
    async fn jobs_of_gone_clients_and_late_jobs_are_not_run() {
        let (on_dropped, seen) = counting();
        let ex = Executor::new(1, 4, on_dropped).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        let (blocked, release_tx, started) = blocker(&ex, far);
        until(&started).await;
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let gone = ex
            .submit(far, Size::Large, move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        drop(gone);
        let r = ran.clone();
        let late = ex
            .submit(Instant::now(), Size::Large, move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        release_tx.send(()).unwrap();
        blocked.await.unwrap();
        assert!(late.await.is_err(), "a late job sends nothing");
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(*seen.lock().unwrap(), vec![Dropped::Gone, Dropped::Late]);
    }
}
