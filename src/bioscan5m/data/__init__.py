"""Data layer: schema, readers, cleaning, caching, images, datasets, downloads, synthetic data."""
