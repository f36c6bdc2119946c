//! A TCP proxy on 127.0.0.1 that holds every chunk for a while in real time, on plain threads:
//! the late socket a loaded machine gives, which tokio's paused clock cannot see.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

pub struct LagProxy {
    addr: SocketAddr,
}

impl LagProxy {
    /// Forwards connections to `target`, each chunk `lag` late. Runs until the process ends.
    pub fn start(target: SocketAddr, lag: Duration) -> LagProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(client, server, lag));
                std::thread::spawn(move || pipe(s2, c2, lag));
            }
        });
        LagProxy { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, lag: Duration) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                std::thread::sleep(lag);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
