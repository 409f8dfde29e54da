//! Bootstrap tokens: generation from a cryptographic random source, in kubeadm's alphabet.

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A new `<id>.<secret>` token: 6 + 16 characters drawn uniformly from [a-z0-9].
pub fn generate() -> anyhow::Result<String> {
    let id = random_string(6)?;
    let secret = random_string(16)?;
    Ok(format!("{id}.{secret}"))
}

fn random_string(len: usize) -> anyhow::Result<String> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        aws_lc_rs::rand::fill(&mut buf)
            .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
        // 252 = 7 * 36: rejecting bytes ≥ 252 keeps the choice uniform.
        for b in buf.iter().filter(|b| **b < 252) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[usize::from(*b % 36)] as char);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::is_bootstrap_token;

    #[test]
    fn generated_tokens_are_valid_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(is_bootstrap_token(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn every_character_appears() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.extend(generate().unwrap().chars().filter(|c| *c != '.'));
        }
        assert_eq!(seen.len(), 36);
    }
}
