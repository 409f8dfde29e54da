//! Configuration input: the kubeadm v1beta4 types, strict loading, defaults, validation, and the command-line
//! flags that feed the model. The resolved model itself is [`crate::model`].

pub mod defaults;
pub mod duration;
pub mod flags;
pub mod load;
pub mod types;
pub mod validate;
pub mod versions;

use std::fmt;
use std::str::FromStr;

/// `encryptionAlgorithm`: the key type of every key the tool generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncryptionAlgorithm {
    #[default]
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl EncryptionAlgorithm {
    pub const NAMES: [&'static str; 5] = [
        "ECDSA-P256",
        "ECDSA-P384",
        "RSA-2048",
        "RSA-3072",
        "RSA-4096",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ECDSA-P256",
            Self::EcdsaP384 => "ECDSA-P384",
            Self::Rsa2048 => "RSA-2048",
            Self::Rsa3072 => "RSA-3072",
            Self::Rsa4096 => "RSA-4096",
        }
    }
}

impl FromStr for EncryptionAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ECDSA-P256" => Self::EcdsaP256,
            "ECDSA-P384" => Self::EcdsaP384,
            "RSA-2048" => Self::Rsa2048,
            "RSA-3072" => Self::Rsa3072,
            "RSA-4096" => Self::Rsa4096,
            _ => return Err(format!("must be one of {}", Self::NAMES.join(", "))),
        })
    }
}

impl serde::Serialize for EncryptionAlgorithm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for EncryptionAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}

impl fmt::Display for EncryptionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
