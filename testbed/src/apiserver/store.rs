//! Object reads and writes over etcd with the API's metadata rules: resourceVersion from the etcd
//! revision, uid and creationTimestamp on create, optimistic concurrency on update.

use serde_json::{Value, json};

use super::Server;
use super::etcd::StoreError;
use super::registry::ResourceType;
use super::status::{ApiError, ApiResult};
use crate::common::time;

fn with_version(mut object: Value, revision: i64) -> Value {
    object["metadata"]["resourceVersion"] = json!(revision.to_string());
    object
}

fn without_version(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(meta) = o["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
    }
    o
}

/// A random RFC 4122 version-4 UUID.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Five characters of the alphabet the real server uses for generateName suffixes.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut b = [0u8; 5];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b.iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect()
}

impl Server {
    pub fn key(&self, rt: &ResourceType, namespace: Option<&str>, name: &str) -> String {
        rt.key(&self.opts.etcd_prefix, namespace, name)
    }

    /// One object with its revision, or None.
    pub async fn read_opt(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<(Value, i64)>> {
        Ok(self
            .etcd
            .get(&self.key(rt, namespace, name))
            .await?
            .map(|s| (with_version(s.object, s.revision), s.revision)))
    }

    /// One object with its revision; 404 when missing.
    pub async fn read(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<(Value, i64)> {
        self.read_opt(rt, namespace, name)
            .await?
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// All objects of a type (in one namespace, or all) and the store revision.
    pub async fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
    ) -> ApiResult<(Vec<Value>, i64)> {
        let (items, revision) = self
            .etcd
            .list(&rt.list_prefix(&self.opts.etcd_prefix, namespace))
            .await?;
        let items = items
            .into_iter()
            .map(|s| with_version(s.object, s.revision))
            .collect();
        Ok((items, revision))
    }

    /// All objects of a type as they were at `revision`; `Err(Compacted)` when that is history etcd
    /// no longer keeps.
    pub async fn list_at(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        revision: i64,
    ) -> Result<Vec<Value>, StoreError> {
        let items = self
            .etcd
            .list_at(&rt.list_prefix(&self.opts.etcd_prefix, namespace), revision)
            .await?;
        Ok(items
            .into_iter()
            .map(|s| with_version(s.object, s.revision))
            .collect())
    }

    /// Stores a new object: sets uid, creationTimestamp, apiVersion/kind; 409 when it exists.
    pub async fn insert(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
    ) -> ApiResult<Value> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        object["apiVersion"] = json!(rt.api_version());
        object["kind"] = json!(rt.kind);
        object["metadata"]["uid"] = json!(new_uid());
        object["metadata"]["creationTimestamp"] = json!(time::now());
        if let (true, Some(ns)) = (rt.namespaced, namespace) {
            object["metadata"]["namespace"] = json!(ns);
        }
        let stored = without_version(&object);
        match self
            .etcd
            .create(&self.key(rt, namespace, &name), &stored)
            .await
        {
            Ok(revision) => Ok(with_version(stored, revision)),
            Err(StoreError::AlreadyExists) => Err(ApiError::already_exists(rt, &name)),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces an object still at `revision`; 409 Conflict otherwise.
    pub async fn store_update(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        object: Value,
        revision: i64,
    ) -> ApiResult<Value> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let stored = without_version(&object);
        match self
            .etcd
            .update(&self.key(rt, namespace, &name), &stored, revision)
            .await
        {
            Ok(new_revision) => Ok(with_version(stored, new_revision)),
            Err(StoreError::Conflict) => Err(ApiError::conflict(rt, &name)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn remove(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        revision: i64,
    ) -> ApiResult<()> {
        match self
            .etcd
            .delete(&self.key(rt, namespace, name), revision)
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict) => Err(ApiError::conflict(rt, name)),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates an object the server itself owns unless it exists (start-up defaults).
    pub async fn ensure(&self, rt: &ResourceType, object: Value) -> ApiResult<()> {
        let namespace = object["metadata"]["namespace"].as_str().map(str::to_string);
        match self.insert(rt, namespace.as_deref(), object).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_and_suffixes_have_the_real_shapes() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        let s = name_suffix();
        assert_eq!(s.len(), 5);
        assert!(
            s.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
    }
}
