//! An empty image directory for the targets that validate whole sandbox configs.

use std::sync::OnceLock;

use isolette::Image;

pub fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("isolette-fuzz-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Image::open(dir).unwrap()
    })
}
