mod common;

#[actix_web::test]
async fn healthz_answers() {
    let app = common::spawn_app().await;
    let r = app.request("GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["status"], "ok");
}
