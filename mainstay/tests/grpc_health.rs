//! The standard gRPC health service (`grpc.health.v1.Health`), which load balancers and
//! orchestrators probe, answers SERVING for the whole server.

mod common;

use common::{within, Server};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[tokio::test]
async fn grpc_health_reports_serving() {
    let server = Server::start(&[]).await;
    let channel = tonic::transport::Endpoint::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .expect("connecting");
    let mut client = HealthClient::new(channel);
    let resp = within(
        "health check",
        client.check(HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .expect("health check answered")
    .into_inner();
    assert_eq!(resp.status(), ServingStatus::Serving);
    let unknown = client
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}
