//! Watches, served by polling etcd and streaming the differences as watch events (ADDED, MODIFIED,
//! DELETED), one JSON object per line as the real server streams them. A watch from a resourceVersion
//! starts from the state at that revision, so what changed since (between a client's list and its
//! watch) is streamed too; a compacted revision is the real server's `410 Expired` ERROR event.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Server;
use super::etcd::StoreError;
use super::registry::ResourceType;
use super::selectors::{self, Query};
use super::status::ApiError;
use super::table;
use crate::common::serve::Body;

struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

fn uid_map(items: Vec<Value>) -> BTreeMap<String, Value> {
    items
        .into_iter()
        .map(|i| {
            (
                i["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                i,
            )
        })
        .collect()
}

async fn snapshot(
    server: &Server,
    rt: &ResourceType,
    ns: Option<&str>,
    query: &Query,
) -> Option<BTreeMap<String, Value>> {
    let (items, _) = server.list(rt, ns).await.ok()?;
    selectors::filter(items, query).ok().map(uid_map)
}

/// What the client already knows when it watches from `revision`: the state at that revision.
async fn snapshot_at(
    server: &Server,
    rt: &ResourceType,
    ns: Option<&str>,
    query: &Query,
    revision: i64,
) -> Result<BTreeMap<String, Value>, Value> {
    match server.list_at(rt, ns, revision).await {
        Ok(items) => selectors::filter(items, query)
            .map(uid_map)
            .map_err(|e| e.body()),
        Err(StoreError::Compacted(_)) => {
            let current = server
                .list(rt, ns)
                .await
                .map(|(_, rev)| rev)
                .unwrap_or_default();
            Err(ApiError::new(
                410,
                "Expired",
                format!("too old resource version: {revision} ({current})"),
            )
            .body())
        }
        Err(e) => Err(ApiError::from(e).body()),
    }
}

pub fn stream(
    server: Arc<Server>,
    rt: ResourceType,
    ns: Option<String>,
    query: Query,
    as_table: bool,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1800u64);
    tokio::spawn(async move {
        let event = |kind: &str, obj: &Value| {
            let object = if as_table {
                table::table(&rt, std::slice::from_ref(obj), query.get("includeObject"))
            } else {
                obj.clone()
            };
            let mut line = json!({"type": kind, "object": object}).to_string();
            line.push('\n');
            Bytes::from(line)
        };
        let since = query
            .get("resourceVersion")
            .and_then(|rv| rv.parse::<i64>().ok())
            .filter(|rv| *rv > 0);
        let mut known = match since {
            None => {
                let Some(known) = snapshot(&server, &rt, ns.as_deref(), &query).await else {
                    return;
                };
                for obj in known.values() {
                    if tx.send(event("ADDED", obj)).await.is_err() {
                        return;
                    }
                }
                known
            }
            Some(revision) => {
                match snapshot_at(&server, &rt, ns.as_deref(), &query, revision).await {
                    Ok(known) => known,
                    Err(status) => {
                        let line = format!("{}\n", json!({"type": "ERROR", "object": status}));
                        let _ = tx.send(Bytes::from(line)).await;
                        return;
                    }
                }
            }
        };
        let mut first = true;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        while tokio::time::Instant::now() < deadline && !tx.is_closed() {
            // The first round streams what changed since the client's revision at once.
            if !first {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            first = false;
            let Some(now) = snapshot(&server, &rt, ns.as_deref(), &query).await else {
                continue;
            };
            let mut events = Vec::new();
            for (uid, obj) in &now {
                match known.get(uid) {
                    None => events.push(event("ADDED", obj)),
                    Some(old)
                        if old["metadata"]["resourceVersion"]
                            != obj["metadata"]["resourceVersion"] =>
                    {
                        events.push(event("MODIFIED", obj))
                    }
                    _ => {}
                }
            }
            for (uid, obj) in &known {
                if !now.contains_key(uid) {
                    events.push(event("DELETED", obj));
                }
            }
            for e in events {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            known = now;
        }
    });
    let mut response = Response::new(ChannelBody(rx).boxed());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
