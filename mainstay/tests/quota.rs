//! `--quota-backend-bytes`: past the quota, writes that add data are refused with etcd's
//! NOSPACE error and the alarm is raised; reads and deletes still work.

mod common;

use std::time::Duration;

use common::{assert_status, eventually, Server};
use etcd_client::{AlarmAction, AlarmType};
use tonic::Code;

#[tokio::test]
async fn writes_past_the_quota_raise_nospace_and_are_refused() {
    let server = Server::start(&["--quota-backend-bytes", "2000000"]).await;
    let mut c = server.client().await;
    let value = vec![b'q'; 100 * 1024];
    // Write until refused: the size estimate trails writes by up to a second.
    let err = eventually("the NOSPACE refusal", Duration::from_secs(30), || {
        let mut c = c.clone();
        let value = value.clone();
        async move {
            for i in 0..10 {
                if let Err(e) = c.put(format!("q/{i}"), value.clone(), None).await {
                    return Some(e);
                }
            }
            None
        }
    })
    .await;
    assert_status(
        Err::<(), _>(err),
        Code::ResourceExhausted,
        "etcdserver: mvcc: database space exceeded",
    );
    let alarms = c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    assert_eq!(alarms.alarms().len(), 1);
    assert_eq!(alarms.alarms()[0].alarm(), AlarmType::Nospace);
    // While the alarm is raised: puts and lease grants are refused, reads and deletes are served.
    assert_status(
        c.put("small", "x", None).await,
        Code::ResourceExhausted,
        "etcdserver: mvcc: database space exceeded",
    );
    assert_status(
        c.lease_grant(10, None).await,
        Code::ResourceExhausted,
        "etcdserver: mvcc: database space exceeded",
    );
    assert!(c.get("q/0", None).await.is_ok());
    assert!(c.delete("q/0", None).await.is_ok());
    let (status, body) = common::http_get(server.port(), "/health").await.unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("\"health\":\"false\""), "{body}");
}
