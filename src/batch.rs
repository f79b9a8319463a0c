//! Batching of distinct cache misses: misses that arrive within `--batch-window` of each other
//! go to MISP as one restSearch with a list of values, which MISP ORs, and the answer is split
//! back per key with the exact-match rule.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{BatchConfig, Secret};
use crate::metrics::Metrics;
use crate::misp::guard::Upstream;
use crate::misp::matching::attribute_matches;
use crate::misp::{MispError, SearchRequest};

type Reply = oneshot::Sender<Result<Vec<Value>, MispError>>;

/// One key waiting for its batch.
struct Pending {
    /// Requests with equal shapes (every parameter but `value`, and the caller) can share a
    /// batch.
    shape: String,
    request: SearchRequest,
    value: String,
    caller_key: Option<Secret>,
    caller_identity: Option<String>,
    reply: Reply,
}

/// Collects misses and sends them to MISP in batches.
pub struct Batcher {
    sender: mpsc::UnboundedSender<Pending>,
}

impl Batcher {
    /// Starts the collecting task. `per_key_limit` is the `limit` a single-key search sends.
    pub fn spawn(
        upstream: Arc<Upstream>,
        config: BatchConfig,
        per_key_limit: u32,
        metrics: Metrics,
    ) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let batch = BatchRunner {
            upstream,
            config,
            per_key_limit: u64::from(per_key_limit),
            metrics,
        };
        tokio::spawn(batch.collect(receiver));
        Self { sender }
    }

    /// Searches one value, possibly together with other values. `request` is the complete
    /// single-key search; the answer holds only the attributes that match `value`.
    pub async fn search(
        &self,
        request: SearchRequest,
        value: String,
        caller_key: Option<Secret>,
        caller_identity: Option<String>,
    ) -> Result<Vec<Value>, MispError> {
        let mut shape_body = request.body().clone();
        shape_body.remove("value");
        let shape = format!(
            "{}\u{1f}{}",
            caller_identity.as_deref().unwrap_or("-"),
            Value::Object(shape_body)
        );
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            shape,
            request,
            value,
            caller_key,
            caller_identity,
            reply,
        };
        if self.sender.send(pending).is_err() {
            return Err(MispError::Unreachable {
                reason: "the batching task has stopped".into(),
            });
        }
        answer.await.unwrap_or_else(|_| {
            Err(MispError::Unreachable {
                reason: "the batching task dropped the request".into(),
            })
        })
    }
}

struct BatchRunner {
    upstream: Arc<Upstream>,
    config: BatchConfig,
    per_key_limit: u64,
    metrics: Metrics,
}

impl BatchRunner {
    /// Waits for a first miss, collects others until the window closes or the batch is full,
    /// and dispatches each group of equal shape.
    async fn collect(self, mut receiver: mpsc::UnboundedReceiver<Pending>) {
        let runner = Arc::new(self);
        while let Some(first) = receiver.recv().await {
            let deadline = Instant::now() + runner.config.window;
            let mut groups: HashMap<String, Vec<Pending>> = HashMap::new();
            let mut count = 1;
            groups.entry(first.shape.clone()).or_default().push(first);
            while count < runner.config.max_keys {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(pending)) => {
                        count += 1;
                        groups
                            .entry(pending.shape.clone())
                            .or_default()
                            .push(pending);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            for group in groups.into_values() {
                let runner = Arc::clone(&runner);
                tokio::spawn(async move { runner.dispatch(group).await });
            }
        }
    }

    async fn dispatch(&self, mut group: Vec<Pending>) {
        if group.len() == 1 {
            let pending = group.pop().expect("one pending key");
            let result = self.search_alone(&pending).await;
            let _ = pending.reply.send(result);
            return;
        }

        let batch_limit = self.per_key_limit * group.len() as u64;
        let mut request = group[0].request.clone();
        let values: Vec<Value> = group.iter().map(|p| Value::from(p.value.clone())).collect();
        request.set("value", Value::Array(values));
        request.set("limit", Value::from(batch_limit));
        self.metrics.batches.inc();
        self.metrics.batch_keys.observe(group.len() as f64);

        let first = &group[0];
        let result = self
            .upstream
            .search(
                &request,
                first.caller_key.as_ref(),
                first.caller_identity.as_deref(),
            )
            .await;
        let attributes = match result {
            Ok(attributes) => attributes,
            Err(err) => {
                for pending in group {
                    let _ = pending.reply.send(Err(err.clone()));
                }
                return;
            }
        };

        if attributes.len() as u64 >= batch_limit {
            // MISP may have cut the list anywhere, so any key may be missing matches: ask
            // each key again on its own rather than report a false miss.
            let answers =
                futures::future::join_all(group.iter().map(|p| self.search_alone(p))).await;
            for (pending, answer) in group.into_iter().zip(answers) {
                let _ = pending.reply.send(answer);
            }
            return;
        }

        let limit = usize::try_from(self.per_key_limit).unwrap_or(usize::MAX);
        for pending in group {
            let matches: Vec<Value> = attributes
                .iter()
                .filter(|attribute| attribute_matches(attribute, &pending.value))
                .take(limit)
                .cloned()
                .collect();
            let _ = pending.reply.send(Ok(matches));
        }
    }

    async fn search_alone(&self, pending: &Pending) -> Result<Vec<Value>, MispError> {
        self.upstream
            .search(
                &pending.request,
                pending.caller_key.as_ref(),
                pending.caller_identity.as_deref(),
            )
            .await
    }
}
