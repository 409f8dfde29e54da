//! Watches, served by polling etcd and streaming the differences as watch events (ADDED, MODIFIED,
//! DELETED), one JSON object per line as the real server streams them. A watch from a
//! resourceVersion starts from etcd's state at that revision, so nothing between a list and its
//! watch is lost; a compacted revision ends the watch with 410 Expired, as the real server does.
//! One poller per server follows etcd's revision; a watch wakes when it moves and compares a
//! cheap fingerprint of its prefix (key count, newest revision) before reading it.

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

/// Where a watch starts: synthetic ADDED events for what exists now (no resourceVersion, or
/// "0"), or the changes after a given revision, read from etcd's history at that revision.
enum Start {
    Now,
    After(i64),
}

fn start_of(query: &Query) -> Result<Start, String> {
    match query.get("resourceVersion") {
        None | Some("") | Some("0") => Ok(Start::Now),
        Some(rv) => rv
            .parse::<i64>()
            .map(Start::After)
            .map_err(|_| format!("invalid resource version {rv:?}")),
    }
}

/// The events that turn `known` into `now`, in the real server's order per object.
fn differences(
    known: &BTreeMap<String, Value>,
    now: &BTreeMap<String, Value>,
) -> Vec<(&'static str, Value)> {
    let mut events = Vec::new();
    for (uid, obj) in now {
        match known.get(uid) {
            None => events.push(("ADDED", obj.clone())),
            Some(old)
                if old["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"] =>
            {
                events.push(("MODIFIED", obj.clone()))
            }
            _ => {}
        }
    }
    for (uid, obj) in known {
        if !now.contains_key(uid) {
            events.push(("DELETED", obj.clone()));
        }
    }
    events
}

/// Polls the store revision every 200 ms while watches listen, so that each watch reads its
/// own prefix only after a write happened somewhere.
pub async fn poll_revision(server: Arc<Server>) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if server.revision.receiver_count() == 0 {
            continue;
        }
        if let Ok(r) = server.etcd.revision().await {
            server.revision.send_if_modified(|current| {
                let moved = *current != r;
                *current = r;
                moved
            });
        }
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
        let expired = |message: String| {
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": "Expired", "code": 410});
            let mut line = json!({"type": "ERROR", "object": status}).to_string();
            line.push('\n');
            Bytes::from(line)
        };
        let start = match start_of(&query) {
            Ok(s) => s,
            Err(message) => {
                let _ = tx.send(expired(message)).await;
                return;
            }
        };
        let mut fingerprint = server.fingerprint(&rt, ns.as_deref()).await.ok();
        let mut known = match start {
            Start::Now => {
                let Some(now) = snapshot(&server, &rt, ns.as_deref(), &query).await else {
                    return;
                };
                for obj in now.values() {
                    if tx.send(event("ADDED", obj)).await.is_err() {
                        return;
                    }
                }
                now
            }
            Start::After(revision) => {
                let then = match server.list_at(&rt, ns.as_deref(), revision).await {
                    Ok(items) => items,
                    Err(StoreError::Compacted(current)) => {
                        let _ = tx
                            .send(expired(format!(
                                "too old resource version: {revision} ({current})"
                            )))
                            .await;
                        return;
                    }
                    Err(_) => return,
                };
                let Ok(then) = selectors::filter(then, &query).map(uid_map) else {
                    return;
                };
                // What changed between the requested revision and now goes out at once.
                fingerprint = None;
                then
            }
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut revision = server.revision.subscribe();
        let mut first = true;
        while tokio::time::Instant::now() < deadline && !tx.is_closed() {
            if !std::mem::take(&mut first) {
                // Wake when the store moved (or after a while anyway, to notice a closed client).
                let _ = tokio::time::timeout(Duration::from_secs(5), revision.changed()).await;
            }
            let current = server.fingerprint(&rt, ns.as_deref()).await.ok();
            if current.is_some() && current == fingerprint {
                continue;
            }
            let Some(now) = snapshot(&server, &rt, ns.as_deref(), &query).await else {
                continue;
            };
            for (kind, obj) in differences(&known, &now) {
                if tx.send(event(kind, &obj)).await.is_err() {
                    return;
                }
            }
            known = now;
            fingerprint = current;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(uid: &str, rv: &str) -> Value {
        json!({"metadata": {"uid": uid, "resourceVersion": rv}})
    }

    #[test]
    fn watches_start_now_or_after_a_revision() {
        assert!(matches!(start_of(&Query::parse(None)), Ok(Start::Now)));
        assert!(matches!(
            start_of(&Query::parse(Some("resourceVersion=0"))),
            Ok(Start::Now)
        ));
        assert!(matches!(
            start_of(&Query::parse(Some("resourceVersion=42"))),
            Ok(Start::After(42))
        ));
        assert!(start_of(&Query::parse(Some("resourceVersion=x"))).is_err());
    }

    #[test]
    fn differences_become_added_modified_and_deleted_events() {
        let known = uid_map(vec![obj("a", "1"), obj("b", "2")]);
        let now = uid_map(vec![obj("a", "1"), obj("b", "3"), obj("c", "4")]);
        let kinds: Vec<&str> = differences(&known, &now).iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["MODIFIED", "ADDED"]);
        let gone = uid_map(vec![obj("a", "1")]);
        let events = differences(&known, &gone);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, "DELETED");
        assert_eq!(events[0].1["metadata"]["uid"], "b");
    }
}
