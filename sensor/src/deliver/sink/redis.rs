//! Redis Streams: one `XADD <stream> [MAXLEN ~ n] * id <event.id> alert <json>` per alert, the
//! batch pipelined in one round trip; the entry ids Redis returns are the acknowledgement.
//! Every failure is retriable (a Redis that is down, or refuses the password, keeps the
//! alerts in the spool); the connection is re-opened after an I/O error.

use redis::aio::MultiplexedConnection;

use crate::alert::Alert;
use crate::deliver::config::{Format, SinkKind, SinkSettings};
use crate::deliver::format;
use crate::deliver::retry::{SendError, SendResult};

/// The Redis Streams sink.
pub(crate) struct RedisSink {
    client: redis::Client,
    stream: String,
    maxlen: u64,
    format: Format,
    conn: Option<MultiplexedConnection>,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("stream", &self.stream)
            .field("maxlen", &self.maxlen)
            .finish_non_exhaustive()
    }
}

impl RedisSink {
    pub(crate) fn new(s: &SinkSettings) -> Result<Self, String> {
        let SinkKind::Redis { url, stream, maxlen } = &s.kind else { return Err("not a redis sink".into()) };
        let client = redis::Client::open(url.as_str()).map_err(|e| format!("url {url:?}: {e}"))?;
        Ok(Self {
            client,
            stream: stream.clone(),
            maxlen: *maxlen,
            format: s.format,
            conn: None,
            timeout: s.timeout,
        })
    }

    pub(crate) async fn send(&mut self, batch: &[Alert]) -> SendResult {
        let fail = |e: redis::RedisError| SendError::retry(format!("redis: {e}"));
        if self.conn.is_none() {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout));
            self.conn =
                Some(self.client.get_multiplexed_async_connection_with_config(&config).await.map_err(fail)?);
        }
        let mut pipe = redis::pipe();
        for a in batch {
            let cmd = pipe.cmd("XADD").arg(&self.stream);
            if self.maxlen > 0 {
                cmd.arg("MAXLEN").arg("~").arg(self.maxlen);
            }
            cmd.arg("*").arg("id").arg(&a.id).arg("alert").arg(format::json(a, self.format).to_string());
        }
        let Some(conn) = self.conn.as_mut() else { return Err(SendError::retry("redis: not connected")) };
        let ids: Result<Vec<String>, _> = pipe.query_async(conn).await;
        match ids {
            Ok(ids) if ids.len() == batch.len() => Ok(Vec::new()),
            Ok(ids) => {
                Err(SendError::retry(format!("redis: {} entry ids for {} alerts", ids.len(), batch.len())))
            }
            Err(e) => {
                self.conn = None;
                Err(fail(e))
            }
        }
    }
}
