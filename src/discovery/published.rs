//! What the endpoint serves at one moment: the cluster-info kubeconfig and the detached JWS of each
//! token allowed to sign it, looked up by token id in constant time.

use std::sync::Arc;

use subtle::ConstantTimeEq;

/// The length of a bootstrap token id.
pub const ID_LEN: usize = 6;

/// One served signature.
#[derive(Clone, PartialEq, Eq)]
struct Signature {
    id: [u8; ID_LEN],
    jws: Arc<str>,
}

/// A snapshot of what may be served.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Published {
    kubeconfig: Arc<str>,
    signatures: Vec<Signature>,
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("kubeconfig_bytes", &self.kubeconfig.len())
            .field("signatures", &self.signatures.len())
            .finish()
    }
}

/// The answer to a request's `token-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The kubeconfig and the token's detached JWS.
    Found { kubeconfig: Arc<str>, jws: Arc<str> },
    /// A well-formed id no served token has.
    Unknown,
    /// Not `[a-z0-9]{6}`.
    Malformed,
}

/// True for a well-formed token id (`[a-z0-9]{6}`).
pub fn is_token_id(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl Published {
    /// A snapshot of `kubeconfig` with `(token id, detached JWS)` pairs; ids that are not well formed
    /// are left out (they could never be asked for).
    pub fn new<I, S, T>(kubeconfig: &str, signatures: I) -> Published
    where
        I: IntoIterator<Item = (S, T)>,
        S: AsRef<str>,
        T: AsRef<str>,
    {
        let signatures = signatures
            .into_iter()
            .filter_map(|(id, jws)| {
                let id = id.as_ref();
                if !is_token_id(id) {
                    return None;
                }
                let mut bytes = [0u8; ID_LEN];
                bytes.copy_from_slice(id.as_bytes());
                Some(Signature {
                    id: bytes,
                    jws: Arc::from(jws.as_ref()),
                })
            })
            .collect();
        Published {
            kubeconfig: Arc::from(kubeconfig),
            signatures,
        }
    }

    /// The ids served, for messages (ids are not secret).
    pub fn token_ids(&self) -> Vec<String> {
        self.signatures
            .iter()
            .map(|s| String::from_utf8_lossy(&s.id).into_owned())
            .collect()
    }

    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// Looks `id` up. Every served id is compared in constant time, with no early exit, so the
    /// answer's timing says nothing about how close a guess came to a served id.
    pub fn lookup(&self, id: &str) -> Lookup {
        if !is_token_id(id) {
            return Lookup::Malformed;
        }
        let mut found: Option<&Signature> = None;
        for signature in &self.signatures {
            let equal: bool = signature.id.ct_eq(id.as_bytes()).into();
            if equal && found.is_none() {
                found = Some(signature);
            }
        }
        match found {
            Some(s) => Lookup::Found {
                kubeconfig: self.kubeconfig.clone(),
                jws: s.jws.clone(),
            },
            None => Lookup::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_answers_found_unknown_and_malformed() {
        let p = Published::new("kc", [("abcdef", "h..s"), ("012345", "g..t"), ("BAD", "x")]);
        assert_eq!(p.token_ids(), ["abcdef", "012345"]);
        match p.lookup("012345") {
            Lookup::Found { kubeconfig, jws } => {
                assert_eq!(&*kubeconfig, "kc");
                assert_eq!(&*jws, "g..t");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.lookup("abcdeg"), Lookup::Unknown);
        for bad in ["", "abcde", "abcdefg", "ABCDEF", "abc.ef", "abcdé"] {
            assert_eq!(p.lookup(bad), Lookup::Malformed, "{bad:?}");
        }
    }
}
