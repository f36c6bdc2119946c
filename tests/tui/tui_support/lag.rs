//! A TCP proxy on 127.0.0.1, on plain threads, in front of the sandbox: it holds every chunk
//! for a while in real time (the late socket a loaded machine gives, which tokio's paused clock
//! cannot see), and can close the connection of one request unanswered (a kept-alive
//! connection the server closes just as the client reuses it).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct LagProxy {
    addr: SocketAddr,
}

impl LagProxy {
    /// Forwards connections to `target`, each chunk `lag` late; the first request whose bytes
    /// contain `drop_once` is not forwarded: its connection is closed instead. Runs until the
    /// process ends.
    pub fn start(target: SocketAddr, lag: Duration, drop_once: Option<&'static str>) -> LagProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let dropped = Arc::new(AtomicBool::new(drop_once.is_none()));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let drop = drop_once.map(|d| (d, dropped.clone()));
                std::thread::spawn(move || pipe(client, server, lag, drop));
                std::thread::spawn(move || pipe(s2, c2, lag, None));
            }
        });
        LagProxy { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    lag: Duration,
    drop: Option<(&'static str, Arc<AtomicBool>)>,
) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some((what, dropped)) = &drop {
                    let hit = String::from_utf8_lossy(&buf[..n]).contains(what);
                    if hit && !dropped.swap(true, Ordering::SeqCst) {
                        let _ = from.shutdown(Shutdown::Both);
                        let _ = to.shutdown(Shutdown::Both);
                        return;
                    }
                }
                std::thread::sleep(lag);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
