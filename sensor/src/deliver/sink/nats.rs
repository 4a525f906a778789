//! NATS JetStream: each alert is published to `subject` with `Nats-Msg-Id: <event.id>` (so
//! JetStream's duplicate window drops a re-sent alert) and acknowledged by the stream's
//! publish ack. When `stream` is set the stream is created over `subject` if it is missing.
//! Every failure is retriable.

use async_nats::jetstream::{self, message::PublishMessage};

use crate::alert::Alert;
use crate::deliver::config::{Format, SinkKind, SinkSettings};
use crate::deliver::format;
use crate::deliver::retry::{SendError, SendResult};

/// The JetStream sink.
pub(crate) struct NatsSink {
    url: String,
    subject: String,
    stream: String,
    format: Format,
    timeout: std::time::Duration,
    js: Option<jetstream::Context>,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("url", &self.url)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl NatsSink {
    pub(crate) fn new(s: &SinkSettings) -> Self {
        let (url, subject, stream) = match &s.kind {
            SinkKind::Nats { url, subject, stream } => (url.clone(), subject.clone(), stream.clone()),
            _ => Default::default(),
        };
        Self { url, subject, stream, format: s.format, timeout: s.timeout, js: None }
    }

    async fn connect(&self) -> Result<jetstream::Context, SendError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            SendError::retry(format!("nats {} {what}: {e}", self.url))
        };
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .connect(&self.url)
            .await
            .map_err(|e| fail("connect", &e))?;
        let js = jetstream::new(client);
        if !self.stream.is_empty() {
            js.get_or_create_stream(jetstream::stream::Config {
                name: self.stream.clone(),
                subjects: vec![self.subject.clone()],
                ..Default::default()
            })
            .await
            .map_err(|e| fail(&format!("stream {}", self.stream), &e))?;
        }
        Ok(js)
    }

    pub(crate) async fn send(&mut self, batch: &[Alert]) -> SendResult {
        if self.js.is_none() {
            self.js = Some(self.connect().await?);
        }
        let Some(js) = self.js.as_ref() else { return Err(SendError::retry("nats: not connected")) };
        let mut acks = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        for (i, a) in batch.iter().enumerate() {
            let body = format::json(a, self.format).to_string();
            let publish = PublishMessage::build().payload(body.into()).message_id(a.id.as_str());
            match js.send_publish(self.subject.clone(), publish).await {
                Ok(ack) => acks.push((i, ack)),
                Err(e) => rejected.push((i, SendError::retry(format!("nats publish: {e}")))),
            }
        }
        for (i, ack) in acks {
            if let Err(e) = ack.await {
                rejected.push((i, SendError::retry(format!("nats publish ack: {e}"))));
            }
        }
        if rejected.len() == batch.len() {
            self.js = None;
            let reason = rejected.first().map(|(_, e)| e.reason().to_owned()).unwrap_or_default();
            return Err(SendError::retry(reason));
        }
        Ok(rejected)
    }
}
