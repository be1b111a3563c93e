"""Students: the backbone (from a hub id, or a config for tiny models) and the LightningModule."""
