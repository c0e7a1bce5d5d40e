//! Fault injection between the control plane and PostgreSQL: a loopback TCP proxy that can
//! stop forwarding without closing anything, as a database that was SIGSTOPped or whose host
//! vanished looks to its clients (queries hang, new connections hang).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// A proxy in front of the test database.
pub struct DbProxy {
    pub address: SocketAddr,
    blackholed: Arc<AtomicBool>,
    changed: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DbProxy {
    /// Forwards a new loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let blackholed = Arc::new(AtomicBool::new(false));
        let (changed, _) = watch::channel(false);
        let task = {
            let changed = changed.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        continue;
                    };
                    tokio::spawn(relay(client, server, changed.subscribe()));
                }
            })
        };
        Self {
            address,
            blackholed,
            changed,
            task,
        }
    }

    /// `url` (a PostgreSQL URL) with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (credentials, host_and_path) = rest.rsplit_once('@').map_or(("", rest), |(c, h)| (c, h));
        let path = host_and_path.split_once('/').map_or("", |(_, path)| path);
        let at = if credentials.is_empty() { "" } else { "@" };
        format!("{scheme}://{credentials}{at}{}/{path}", self.address)
    }

    /// Stops (true) or resumes (false) forwarding in both directions on every connection.
    pub fn blackhole(&self, on: bool) {
        self.blackholed.store(on, Ordering::SeqCst);
        self.changed.send_replace(on);
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies bytes both ways while forwarding is on; holds them (unread) while it is off.
async fn relay(client: TcpStream, server: TcpStream, mut blackholed: watch::Receiver<bool>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut up = [0_u8; 16 * 1024];
    let mut down = [0_u8; 16 * 1024];
    loop {
        while *blackholed.borrow_and_update() {
            if blackholed.changed().await.is_err() {
                return;
            }
        }
        tokio::select! {
            read = client_read.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if server_write.write_all(&up[..n]).await.is_err() { return },
            },
            read = server_read.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if client_write.write_all(&down[..n]).await.is_err() { return },
            },
            _ = blackholed.changed() => {}
        }
    }
}
