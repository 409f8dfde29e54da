//! `init phase etcd local`: the static-pod manifest of a local etcd member.

use super::InitData;
use crate::workflow::Phase;

pub fn phase() -> Phase<InitData> {
    Phase::group(
        "etcd",
        "Generate the static Pod manifest file for a local etcd",
        None,
        Vec::new(),
    )
}
