//! Gathers model inputs arriving from many threads into one model call: a worker takes
//! the first waiting input, everything queued behind it, and whatever more arrives within
//! a short wait, up to the batch size. The worker only runs the model: callers decode
//! before they submit ([`SearchService::prepare`]) and describe and rank after
//! ([`SearchService::image_vector`]) on their own threads, so under load one model call
//! follows the other and the throughput approaches the batched embedding's; a lone query
//! waits at most `wait`. The queue is bounded: a full one refuses at once instead of
//! growing memory. An input whose asker has gone (a client that hung up) is dropped
//! unembedded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::{self, Photo, FEATURE_DIMS};
use crate::service::SearchService;

/// Where a photo's row (features, then colour: [`model::row`]) goes when its batch is
/// done. Any `FnOnce` taking it is one.
pub trait Reply: Send {
    fn send(self: Box<Self>, features: Result<Vec<f32>>);

    /// Whether anyone still waits for the features; an input no one waits for is not embedded.
    fn wanted(&self) -> bool {
        true
    }
}

impl<F: FnOnce(Result<Vec<f32>>) + Send> Reply for F {
    fn send(self: Box<Self>, features: Result<Vec<f32>>) {
        (*self)(features)
    }
}

/// A photo's colour and where its row goes, while its input is in the model.
type Waiting = (Vec<f32>, Box<dyn Reply>);

/// Told the size of every batch the worker embeds (for metrics).
pub type BatchObserver = Box<dyn Fn(usize) + Send>;

struct Job {
    photo: Photo,
    reply: Box<dyn Reply>,
}

/// The queue was full; try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

pub struct Batcher {
    jobs: SyncSender<Job>,
    queued: Arc<AtomicUsize>,
}

impl Batcher {
    /// Starts the worker thread; it ends when the batcher is dropped and the queue is empty.
    pub fn start(
        service: Arc<SearchService>,
        max_batch: usize,
        wait: Duration,
        capacity: usize,
        observe: BatchObserver,
    ) -> std::io::Result<Batcher> {
        let (jobs, rx) = mpsc::sync_channel(capacity.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = queued.clone();
        std::thread::Builder::new()
            .name("query-batcher".into())
            .spawn(move || work(&service, &rx, max_batch.max(1), wait, &counter, &observe))?;
        Ok(Batcher { jobs, queued })
    }

    /// Queues a prepared photo; `reply` is called once, from the worker, with its row.
    pub fn submit(&self, photo: Photo, reply: Box<dyn Reply>) -> std::result::Result<(), Full> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        match self.jobs.try_send(Job { photo, reply }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                Err(Full)
            }
        }
    }

    /// Queries waiting for or in a batch now.
    pub fn depth(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }
}

fn work(
    service: &SearchService,
    rx: &Receiver<Job>,
    max_batch: usize,
    wait: Duration,
    queued: &AtomicUsize,
    observe: &BatchObserver,
) {
    // Keeps a job someone still waits for; forgets the others at once.
    let keep = |batch: &mut Vec<Job>, job: Job| {
        if job.reply.wanted() {
            batch.push(job);
        } else {
            queued.fetch_sub(1, Ordering::SeqCst);
        }
    };
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::with_capacity(max_batch);
        keep(&mut batch, first);
        let deadline = Instant::now() + wait;
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => keep(&mut batch, job),
                Err(_) => match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(job) => keep(&mut batch, job),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                },
            }
        }
        if batch.is_empty() {
            continue;
        }
        observe(batch.len());
        // The colours wait here while the model runs on the inputs.
        let (inputs, waiting): (Vec<Vec<f32>>, Vec<Waiting>) =
            batch.into_iter().map(|j| (j.photo.input, (j.photo.colour, j.reply))).unzip();
        // A panic in a batch fails its queries, not the worker every later query needs.
        let embedded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            service.engine().embedder().and_then(|e| e.embed(&inputs)).map_err(|e| e.to_string())
        }))
        .unwrap_or_else(|_| Err("the model panicked".to_string()));
        queued.fetch_sub(inputs.len(), Ordering::SeqCst);
        match embedded {
            Ok(features) => {
                for ((colour, reply), f) in waiting.into_iter().zip(features.chunks(FEATURE_DIMS)) {
                    reply.send(Ok(model::row(f, &colour)));
                }
            }
            Err(reason) => waiting.into_iter().for_each(|(_, reply)| reply.send(Err(Error::Model(reason.clone())))),
        }
    }
}
