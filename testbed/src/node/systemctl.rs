//! `systemctl` on a testbed node: forwards the command line to the node's service manager (PID 1)
//! and prints its answer with its exit code. Off a testbed node it fails as systemctl does on a
//! host without systemd.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::init::{Reply, Request, SOCKET};

pub fn main(args: &[String]) -> i32 {
    let Ok(mut stream) = UnixStream::connect(SOCKET) else {
        eprintln!("System has not been booted with systemd as init system (PID 1). Can't operate.");
        eprintln!("Failed to connect to bus: Host is down");
        return 1;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let request = Request {
        argv: args.to_vec(),
    };
    if writeln!(
        stream,
        "{}",
        serde_json::to_string(&request).unwrap_or_default()
    )
    .is_err()
    {
        eprintln!("Failed to connect to bus: Connection reset by peer");
        return 1;
    }
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        eprintln!("Failed to connect to bus: Connection timed out");
        return 1;
    }
    match serde_json::from_str::<Reply>(&line) {
        Ok(reply) => {
            print!("{}", reply.out);
            eprint!("{}", reply.err);
            reply.code
        }
        Err(e) => {
            eprintln!("Failed to read the service manager's reply: {e}");
            1
        }
    }
}
