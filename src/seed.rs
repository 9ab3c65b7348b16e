pub async fn run(_: &crate::store::StoreConfig, _: &crate::config::SeedArgs) -> Result<(), String> {
    Err("todo".into())
}
