//! Evaluation off the async workers: a small pool of OS threads (about one per core) takes
//! jobs from a bounded queue. The async side only reads bodies and waits for answers, so
//! health checks, metrics and new connections stay responsive whatever the requests cost.
//!
//! A job whose submitter has gone (the client hung up: the handler future was dropped) or
//! whose deadline has passed is dropped when it is dequeued, not run. When the queue is
//! full, [`Executor::submit`] fails at once and the caller answers 503.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
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

pub struct Executor {
    queue: SyncSender<Task>,
    queued: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    workers: usize,
    capacity: usize,
    on_dropped: OnDropped,
}

/// The queue is full.
#[derive(Debug)]
pub struct Full;

impl Executor {
    /// `workers` threads and room for `queue` waiting jobs.
    pub fn new(workers: usize, queue: usize, on_dropped: OnDropped) -> std::io::Result<Self> {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::sync_channel::<Task>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        for i in 0..workers {
            let rx = rx.clone();
            let queued = queued.clone();
            let running = running.clone();
            std::thread::Builder::new()
                .name(format!("volguard-eval-{i}"))
                .spawn(move || worker(&rx, &queued, &running))?;
        }
        Ok(Executor {
            queue: tx,
            queued,
            running,
            workers,
            capacity: queue,
            on_dropped,
        })
    }

    /// The number of jobs waiting.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The number of jobs being run.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues `job`; its result arrives on the receiver unless the receiver is dropped or
    /// `deadline` passes first (then the job does not run).
    pub fn submit<T, F>(&self, deadline: Instant, job: F) -> Result<oneshot::Receiver<T>, Full>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let on_dropped = self.on_dropped.clone();
        let task: Task = Box::new(move || {
            if tx.is_closed() {
                on_dropped(Dropped::Gone);
            } else if Instant::now() >= deadline {
                on_dropped(Dropped::Late);
            } else {
                let _ = tx.send(job());
            }
        });
        // Counted before sending so a worker never sees a count below zero.
        self.queued.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(task) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(Full)
            }
        }
    }
}

fn worker(rx: &Mutex<Receiver<Task>>, queued: &AtomicUsize, running: &AtomicUsize) {
    loop {
        let task = {
            let guard = rx.lock().unwrap_or_else(|e| e.into_inner());
            match guard.recv() {
                Ok(t) => t,
                Err(_) => return,
            }
        };
        queued.fetch_sub(1, Ordering::Relaxed);
        running.fetch_add(1, Ordering::Relaxed);
        // A panicking job must not take the worker with it; its submitter sees the result
        // channel closed.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
        running.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    fn counting() -> (OnDropped, Arc<Mutex<Vec<Dropped>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (Arc::new(move |d| s.lock().unwrap().push(d)), seen)
    }

    #[tokio::test]
    async fn runs_jobs_and_refuses_when_full() {
        let (on_dropped, _) = counting();
        let ex = Executor::new(1, 1, on_dropped).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        // Occupies the only worker until released.
        let first = ex
            .submit(far, move || {
                s.store(true, Ordering::SeqCst);
                release_rx.recv().unwrap();
                1
            })
            .unwrap();
        while !started.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        let second = ex.submit(far, || 2).unwrap();
        assert_eq!(ex.queued(), 1);
        assert!(ex.submit(far, || 3).is_err(), "queue of one is full");
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), 1);
        assert_eq!(second.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn jobs_of_gone_clients_and_late_jobs_are_not_run() {
        let (on_dropped, seen) = counting();
        let ex = Executor::new(1, 4, on_dropped).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = ex.submit(far, move || release_rx.recv().unwrap()).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let gone = ex
            .submit(far, move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        drop(gone);
        let r = ran.clone();
        let late = ex
            .submit(Instant::now(), move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        release_tx.send(()).unwrap();
        blocker.await.unwrap();
        assert!(late.await.is_err(), "a late job sends nothing");
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(*seen.lock().unwrap(), vec![Dropped::Gone, Dropped::Late]);
    }
}
