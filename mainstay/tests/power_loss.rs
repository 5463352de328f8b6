//! Every acknowledged write survives a power cut, not only a `kill -9`.
//!
//! `kill -9` keeps the page cache, so a member that acknowledged a write before it reached the
//! disk passes every crash test. Here the member's data directory is a FUSE file system
//! (`tests/power-loss/lossyfs.py`) that keeps, beside what the member sees, only what was
//! fsynced: the power is cut while clients write, the member is killed, and it starts again on
//! what was synced. Every write it acknowledged must be there, and it must start.
//!
//! Needs /dev/fuse, fusermount and Debian's python3-fusepy (`scripts/setup.sh` installs it).
//! Reproduce: `cargo test --release --workspace --test power_loss -- --nocapture`

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{temp_dir, within, Server};
use tokio::time::Instant;

const WRITERS: usize = 4;
/// How long clients write before the power is cut.
const WRITE_FOR: Duration = Duration::from_secs(3);

/// The lossy file system mounted on `mountpoint`, unmounted when dropped.
struct LossyFs {
    child: Child,
    mountpoint: PathBuf,
}

impl LossyFs {
    fn mount(live: &Path, durable: &Path, mountpoint: &Path) -> LossyFs {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/power-loss/lossyfs.py");
        for d in [live, durable, mountpoint] {
            std::fs::create_dir_all(d).unwrap();
        }
        let log = std::fs::File::create(mountpoint.with_extension("lossyfs.log")).unwrap();
        let child = Command::new("/usr/bin/python3")
            .arg(script)
            .args([live, durable, mountpoint])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting lossyfs.py");
        let fs = LossyFs {
            child,
            mountpoint: mountpoint.to_path_buf(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !fs.mounted() {
            assert!(
                std::time::Instant::now() < deadline,
                "lossyfs did not mount: {}",
                fs.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        fs
    }

    fn mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let target = self.mountpoint.to_string_lossy().to_string();
        mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(target.as_str()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.mountpoint.with_extension("lossyfs.log")).unwrap_or_default()
    }

    /// From now on nothing more reaches the durable copy, and every operation fails.
    fn cut_power(&self) {
        let _ = std::fs::File::create(self.mountpoint.join(".lossyfs-cut-power"));
    }

    fn unmount(&mut self) {
        for unmount in [&["fusermount", "-u", "-z"][..], &["umount", "-l"][..]] {
            if !self.mounted() {
                break;
            }
            let _ = Command::new(unmount[0])
                .args(&unmount[1..])
                .arg(&self.mountpoint)
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LossyFs {
    fn drop(&mut self) {
        self.unmount();
    }
}

fn fuse_usable() -> bool {
    Path::new("/dev/fuse").exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_power_cut() {
    if !fuse_usable() {
        eprintln!("power_loss: /dev/fuse is missing here; this test cannot run");
        return;
    }
    let dir = temp_dir();
    let data = dir.path().join("data");
    let (live, durable) = (dir.path().join("live"), dir.path().join("durable"));
    let mut fs = LossyFs::mount(&live, &durable, &data);
    let mut server = Server::start_in(dir, &[]).await;

    // Writers put unique keys and remember what was acknowledged, and at which revision.
    let acked: Arc<Mutex<BTreeMap<String, (String, i64)>>> = Default::default();
    let stop = Instant::now() + WRITE_FOR;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut client = server.client().await;
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < stop {
                let key = format!("pl/{w}/{i:06}");
                let value = format!("value-{w}-{i}");
                let put = client.put(key.clone(), value.clone(), None);
                match tokio::time::timeout(Duration::from_secs(2), put).await {
                    Ok(Ok(r)) => {
                        let rev = r.header().map_or(0, |h| h.revision());
                        acked.lock().unwrap().insert(key, (value, rev));
                    }
                    // After the cut nothing more is acknowledged.
                    _ => return,
                }
                i += 1;
            }
        }));
    }
    // Cut the power while they write.
    tokio::time::sleep(WRITE_FOR - Duration::from_millis(500)).await;
    fs.cut_power();
    server.kill();
    for w in writers {
        let _ = w.await;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    fs.unmount();
    println!("{}", fs.log().trim());
    assert!(acked.len() > 50, "only {} writes acknowledged", acked.len());

    // Start again on what the disk kept.
    let data = server.data_dir();
    std::fs::remove_dir(&data).expect("the unmounted mount point is empty");
    std::fs::rename(&durable, &data).unwrap();
    within("starting on what was synced", server.restart()).await;
    let mut client = server.client().await;
    let mut lost = Vec::new();
    for (key, (value, _)) in &acked {
        let got = client.get(key.as_str(), None).await.unwrap();
        match got.kvs().first() {
            Some(kv) if kv.value() == value.as_bytes() => {}
            other => lost.push(format!("{key}: {:?}", other.map(|kv| kv.value_str().ok()))),
        }
    }
    let max_rev = acked.values().map(|(_, r)| *r).max().unwrap_or(0);
    let now = client.get("absent", None).await.unwrap();
    let revision = now.header().map_or(0, |h| h.revision());
    println!(
        "{} acknowledged writes (up to revision {max_rev}); after the power cut the member is at \
         revision {revision} and {} are missing",
        acked.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged writes lost: {}",
        lost.join(", ")
    );
    assert!(
        revision >= max_rev,
        "revision went back: {revision} < {max_rev}"
    );
}
